//! schemas/ holds every method's parameter schema as the plugins publish it; this fails when
//! a method's parameters changed without `make schemas`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn schemas_folder_is_up_to_date() {
    let fresh = scratch("schemas");
    let (ok, _, stderr) = run(esegeta().arg("schema").arg("--write-dir").arg(&fresh));
    assert!(ok, "{stderr}");
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/methods");
    let (fresh, committed) = (read_dir(&fresh), read_dir(&committed));
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "schemas/methods lists other methods than the plugins provide; run `make schemas`"
    );
    for (name, text) in &fresh {
        assert_eq!(
            text, &committed[name],
            "schemas/methods/{name} is stale; run `make schemas`"
        );
    }
}
