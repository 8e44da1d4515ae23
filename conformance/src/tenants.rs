//! Tenant facts as the admin CLI reports them.

use crate::Gateway;

impl Gateway {
    /// Tenant `name`'s entry in `s3dedup admin tenant list --json` (`canonical_id`,
    /// `dedup_scope` …); panics when there is none.
    pub fn tenant_entry(&self, name: &str) -> serde_json::Value {
        let out = self.admin_cli_ok(&["tenant", "list", "--json"]);
        let list: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        list["tenants"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no tenant {name:?} in {list}"))
    }

    /// Tenant `name`'s canonical id.
    pub fn canonical_id(&self, name: &str) -> String {
        self.tenant_entry(name)["canonical_id"]
            .as_str()
            .expect("canonical_id")
            .to_owned()
    }
}
