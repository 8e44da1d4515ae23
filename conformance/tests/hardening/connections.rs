//! Connections and descriptors: silent connections, held connections past the fd limit, accept backoff, the default limit.

use super::*;

#[test]
fn a_silent_connection_does_not_hold_its_slot_forever() {
    let g = Gateway::start().unwrap();
    let mut s = TcpStream::connect(g.s3_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(45))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    let took = started.elapsed();
    assert!(
        matches!(r, Ok(0) | Err(_)) && took < Duration::from_secs(40),
        "a connection that sent nothing was kept {took:?} ({r:?})"
    );
    assert!(
        took >= Duration::from_secs(25),
        "closed after only {took:?}"
    );
}

/// An anonymous `GET /` that gives up after `timeout`: the status, or `None`.
fn quick_get(addr: &str, timeout: Duration) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Opens `n` idle connections to `addr` (each sends nothing).
fn hold(addr: &str, n: usize) -> Vec<TcpStream> {
    let addr = addr.parse().unwrap();
    (0..n)
        .filter_map(|_| {
            (0..3).find_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok())
        })
        .collect()
}

fn cpu_share(pid: u32, over: Duration) -> f64 {
    let before = cpu_time(pid).unwrap();
    std::thread::sleep(over);
    (cpu_time(pid).unwrap() - before).as_secs_f64() / over.as_secs_f64()
}

#[test]
fn held_connections_beyond_the_soft_fd_limit_do_not_stop_service() {
    raise_own_fd_limit();
    // Soft 1024 (the usual default), hard 4096: the gateway raises its soft limit.
    let tmp = tempfile::tempdir().unwrap();
    let g =
        Gateway::start_wrapped(tmp.path(), &[], &["prlimit", "--nofile=1024:4096", "--"]).unwrap();
    let held = hold(g.s3_addr(), 1100);
    assert_eq!(held.len(), 1100);
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_share(g.pid(), Duration::from_secs(2));
    let started = Instant::now();
    let status = quick_get(g.s3_addr(), Duration::from_secs(5));
    let took = started.elapsed();
    eprintln!(
        "1100 held connections: gateway CPU {:.0} %, a new request {took:?}",
        cpu * 100.0
    );
    assert_eq!(status, Some(403), "a new client was not served within 5 s");
    assert!(
        took < Duration::from_secs(2),
        "a new client waited {took:?}"
    );
    assert!(cpu < 0.3, "gateway used {:.0} % CPU", cpu * 100.0);
    drop(held);
}

#[test]
fn accept_backs_off_instead_of_spinning_when_descriptors_run_out() {
    raise_own_fd_limit();
    let tmp = tempfile::tempdir().unwrap();
    // More connections allowed than descriptors: accept() fails with EMFILE.
    let g = Gateway::start_wrapped(
        tmp.path(),
        &[("S3DEDUP_MAX_CONNECTIONS", "10000")],
        &["prlimit", "--nofile=160:160", "--"],
    )
    .unwrap();
    // ~150 are accepted before descriptors run out; the rest wait in the backlog.
    let held = hold(g.s3_addr(), 200);
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_share(g.pid(), Duration::from_secs(3));
    eprintln!("out of descriptors: gateway CPU {:.0} %", cpu * 100.0);
    assert!(cpu < 0.3, "accept loop spun at {:.0} % CPU", cpu * 100.0);
    drop(held);
    // Once descriptors are free again, clients are served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match quick_get(g.s3_addr(), Duration::from_secs(2)) {
            Some(403) => break,
            other if Instant::now() > deadline => panic!("not served again: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let errors = g.metric_sum("s3dedup_accept_errors_total", &[]).unwrap();
    assert!(errors > 0.0, "no accept error was counted");
}

#[test]
fn default_connection_limit_fits_a_low_descriptor_limit() {
    raise_own_fd_limit();
    let tmp = tempfile::tempdir().unwrap();
    let g =
        Gateway::start_wrapped(tmp.path(), &[], &["prlimit", "--nofile=512:512", "--"]).unwrap();
    // 256 served (512 minus the reserve), the rest wait in the listen backlog.
    let held = hold(g.s3_addr(), 320);
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_share(g.pid(), Duration::from_secs(2));
    assert!(cpu < 0.3, "gateway used {:.0} % CPU", cpu * 100.0);
    let log = std::fs::read_to_string(tmp.path().join("gateway.log")).unwrap();
    assert!(
        !log.contains("accept failed"),
        "the limit did not fit: {log}"
    );
    drop(held);
}
