//! An admin kubeconfig for the machine kubeforge runs on: the cluster's `admin.conf`, renamed
//! to one named context whose server is the control-plane endpoint (the VIP), alone in a file
//! or merged into an existing kubeconfig without touching its other entries.
//!
//! Kubeconfigs hold private keys: no error here quotes their content.

use serde_json::{Map, Value, json};

use crate::model::Cluster;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    #[error(
        "{what} is not a kubeconfig kubeforge can read ({why}); its content is not shown: it holds keys"
    )]
    Unreadable { what: String, why: &'static str },
}

/// The context (and cluster) name kubeforge gives a cluster unless told otherwise: the
/// endpoint's name, e.g. `k8scp.lab.example`.
pub fn default_name(cluster: &Cluster) -> String {
    cluster.vip_name()
}

fn unreadable(what: &str, why: &'static str) -> KubeconfigError {
    KubeconfigError::Unreadable {
        what: what.to_string(),
        why,
    }
}

fn parse(text: &str, what: &str) -> Result<Value, KubeconfigError> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    let value: Value =
        serde_saphyr::from_str(text).map_err(|_| unreadable(what, "not valid YAML"))?;
    if !value.is_object() {
        return Err(unreadable(what, "not a YAML mapping"));
    }
    Ok(value)
}

/// The first entry of a kubeconfig list (`clusters`, `users`) with its body under `key`.
fn first<'v>(config: &'v Value, list: &str, key: &str) -> Option<&'v Value> {
    config[list].as_array()?.first().map(|e| &e[key])
}

/// `admin` (the text of `/etc/kubernetes/admin.conf`) as a kubeconfig with one cluster, one
/// user and one context, all named after `name`, the server being the control-plane endpoint.
pub fn admin(admin: &str, cluster: &Cluster, name: &str) -> Result<Value, KubeconfigError> {
    let what = "the cluster's admin.conf";
    let config = parse(admin, what)?;
    let mut cluster_entry = first(&config, "clusters", "cluster")
        .filter(|c| c.is_object())
        .cloned()
        .ok_or_else(|| unreadable(what, "no cluster in it"))?;
    let user_entry = first(&config, "users", "user")
        .filter(|u| u.is_object())
        .cloned()
        .ok_or_else(|| unreadable(what, "no user in it"))?;
    cluster_entry["server"] = json!(format!("https://{}", cluster.control_plane_endpoint()));
    let user = format!("{name}-admin");
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster_entry}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
        "preferences": {},
    }))
}

/// `new` (from [`admin`]) merged into the kubeconfig `existing` (`None`: no file yet): its
/// cluster, user and context replace entries of the same names and are added otherwise;
/// every other entry and setting stays; the current context is set only when there is none.
pub fn merge(existing: Option<&str>, new: &Value) -> Result<String, KubeconfigError> {
    let mut config = match existing {
        Some(text) => parse(text, "the kubeconfig to merge into")?,
        None => json!({}),
    };
    let map: &mut Map<String, Value> = config.as_object_mut().expect("parse gives a mapping");
    map.entry("apiVersion").or_insert(json!("v1"));
    map.entry("kind").or_insert(json!("Config"));
    for list in ["clusters", "users", "contexts"] {
        let entries = map.entry(list).or_insert_with(|| json!([]));
        if entries.is_null() {
            *entries = json!([]);
        }
        let Some(entries) = entries.as_array_mut() else {
            return Err(unreadable(
                "the kubeconfig to merge into",
                "a list is not a list",
            ));
        };
        for entry in new[list].as_array().into_iter().flatten() {
            match entries.iter_mut().find(|e| e["name"] == entry["name"]) {
                Some(old) => *old = entry.clone(),
                None => entries.push(entry.clone()),
            }
        }
    }
    let current = map
        .get("current-context")
        .and_then(Value::as_str)
        .unwrap_or("");
    if current.is_empty() {
        map.insert("current-context".into(), new["current-context"].clone());
    }
    to_yaml(&config)
}

/// A kubeconfig as YAML.
pub fn to_yaml(config: &Value) -> Result<String, KubeconfigError> {
    serde_saphyr::to_string(config)
        .map_err(|_| unreadable("the kubeconfig", "it cannot be written as YAML"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://k8scp.lab.test:8443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nkind: Config\npreferences: {}\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    fn cluster() -> Cluster {
        crate::model::load("hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\ndns:\n  domain: lab.test\nendpoint_port: 9443\n")
            .cluster
            .unwrap()
    }

    #[test]
    fn the_admin_kubeconfig_becomes_one_named_context_through_the_endpoint() {
        let c = admin(ADMIN, &cluster(), "k8scp.lab.test").unwrap();
        assert_eq!(c["clusters"][0]["name"], "k8scp.lab.test");
        assert_eq!(
            c["clusters"][0]["cluster"]["server"],
            "https://k8scp.lab.test:9443"
        );
        assert_eq!(
            c["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(c["users"][0]["name"], "k8scp.lab.test-admin");
        assert_eq!(c["users"][0]["user"]["client-key-data"], "S0VZ");
        assert_eq!(c["contexts"][0]["context"]["user"], "k8scp.lab.test-admin");
        assert_eq!(c["current-context"], "k8scp.lab.test");
        // It reads back as YAML.
        let text = to_yaml(&c).unwrap();
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn merging_keeps_every_other_entry_and_the_current_context() {
        let mine = "apiVersion: v1\nkind: Config\nclusters:\n- name: home\n  cluster:\n    server: https://192.0.2.1:6443\n- name: k8scp.lab.test\n  cluster:\n    server: https://old:1\nusers:\n- name: me\n  user:\n    token: abc\ncontexts:\n- name: home\n  context:\n    cluster: home\n    user: me\ncurrent-context: home\n";
        let new = admin(ADMIN, &cluster(), "k8scp.lab.test").unwrap();
        let merged: Value = serde_saphyr::from_str(&merge(Some(mine), &new).unwrap()).unwrap();
        assert_eq!(merged["current-context"], "home");
        let names = |list: &str| -> Vec<String> {
            merged[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names("clusters"), ["home", "k8scp.lab.test"]);
        assert_eq!(names("users"), ["me", "k8scp.lab.test-admin"]);
        assert_eq!(names("contexts"), ["home", "k8scp.lab.test"]);
        // The stale entry of the same name is replaced, not duplicated.
        assert_eq!(
            merged["clusters"][1]["cluster"]["server"],
            "https://k8scp.lab.test:9443"
        );
        assert_eq!(merged["users"][0]["user"]["token"], "abc");
        // Merging again changes nothing.
        let again = merge(Some(&to_yaml(&merged).unwrap()), &new).unwrap();
        assert_eq!(serde_saphyr::from_str::<Value>(&again).unwrap(), merged);
        // Into nothing: the new context is current.
        let fresh: Value = serde_saphyr::from_str(&merge(None, &new).unwrap()).unwrap();
        assert_eq!(fresh["current-context"], "k8scp.lab.test");
    }

    #[test]
    fn errors_never_quote_a_kubeconfig() {
        let broken = "users:\n- name: x\n  user:\n    client-key-data: SECRETKEY\n  : [\n";
        let err = admin(broken, &cluster(), "n").unwrap_err().to_string();
        assert!(!err.contains("SECRETKEY"), "{err}");
        let err = merge(Some(broken), &json!({})).unwrap_err().to_string();
        assert!(!err.contains("SECRETKEY"), "{err}");
        let no_user = "clusters:\n- name: a\n  cluster:\n    server: x\n";
        assert!(
            admin(no_user, &cluster(), "n")
                .unwrap_err()
                .to_string()
                .contains("no user")
        );
    }
}
