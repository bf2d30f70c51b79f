//! The README's inventory reference names every setting and every INI variable kubeforge reads.

use kubeforge_core::inventory::settings::{INI_HOST_VARS, SETTINGS};

#[test]
fn readme_documents_every_setting() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md at the workspace root");
    for setting in SETTINGS {
        assert!(
            readme.contains(&format!("| `{}` |", setting.key)),
            "README lacks a row for `{}`",
            setting.key
        );
        for ini in setting.ini {
            assert!(
                readme.contains(ini),
                "README does not mention the INI variable {ini}"
            );
        }
    }
    for (var, _) in INI_HOST_VARS {
        assert!(readme.contains(var), "README does not mention {var}");
    }
}
