//! Both parsers, and validation after them, return diagnostics for any input: they never panic.

use kubeforge_core::diag::Report;
use kubeforge_core::inventory;
use kubeforge_core::model;
use proptest::prelude::*;

/// Fragments that real inventories are made of, so that generated inputs reach deep into both
/// parsers instead of failing on the first character.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("hosts:".to_string()),
        Just("  - ".to_string()),
        Just("name: ".to_string()),
        Just("address: ".to_string()),
        Just("[k8sControlPlane]".to_string()),
        Just("[all:vars]".to_string()),
        Just("k8scp01".to_string()),
        Just("k8s[01:03]".to_string()),
        Just("ansible_host=".to_string()),
        Just("kubeforge_vip=".to_string()),
        Just("vip: 10.0.0.1".to_string()),
        Just("pod_cidr: 10.0.0.0/8".to_string()),
        Just("\n".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("#".to_string()),
        Just("{".to_string()),
        Just("[".to_string()),
        Just(":".to_string()),
        Just("&a *a".to_string()),
        "[ -~]{0,12}",
        "\\PC{0,6}",
    ]
}

fn check(text: &str) {
    let _ = inventory::detect_format(text);
    let v = model::load(text);
    let _ = Report {
        path: "inventory",
        source: text,
        diagnostics: &v.diagnostics,
    }
    .to_string();
    if v.cluster.is_some() {
        assert!(!v.diagnostics.iter().any(|d| d.is_error()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn inventory_like_text_never_panics(parts in prop::collection::vec(fragment(), 0..40)) {
        let text: String = parts.concat();
        check(&text);
        // The same text read as the other format as well.
        check(&format!("[g]\n{text}"));
        check(&format!("hosts:\n{text}"));
    }
}
