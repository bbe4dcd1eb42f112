//! The served OpenAPI document passes the specification's own validator (the npm package
//! `@apidevtools/swagger-parser`, installed by `scripts/setup.sh`), and that validator does reject
//! a broken document, so a pass means something.

use std::{path::Path, process::Command};

fn validate(document: &serde_json::Value, name: &str) -> (bool, String) {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    assert!(
        web.join("node_modules/@apidevtools/swagger-parser")
            .is_dir(),
        "the validator is not installed: run scripts/setup.sh"
    );
    let file =
        std::env::temp_dir().join(format!("fuze-openapi-{}-{name}.json", std::process::id()));
    let bytes = serde_json::to_vec(document).expect("a JSON value serializes");
    std::fs::write(&file, bytes).expect("the temporary file is written");
    let out = Command::new("node")
        .arg(web.join("validate-openapi.mjs"))
        .arg(&file)
        .output()
        .expect("node runs (installed by scripts/setup.sh)");
    let _ = std::fs::remove_file(&file);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn served() -> serde_json::Value {
    serde_json::from_str(fuze_api::openapi::json()).expect("the document is JSON")
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let doc: serde_json::Value = served();
    assert_eq!(doc["openapi"], "3.1.0");
    let (valid, said) = validate(&doc, "served");
    assert!(valid, "{said}");
    assert!(said.contains("OpenAPI 3.1.0"), "{said}");
}

#[test]
fn the_validator_rejects_a_broken_document() {
    let mut doc: serde_json::Value = served();
    // An answer must have a description, and a reference must lead somewhere.
    let save = &mut doc["paths"]["/api/v1/bookmarks"]["post"]["responses"]["202"];
    save.as_object_mut()
        .expect("an answer is an object")
        .remove("description");
    let (valid, said) = validate(&doc, "no-description");
    assert!(!valid, "a response without a description passed: {said}");

    let mut doc: serde_json::Value = served();
    doc["components"]["schemas"]
        .as_object_mut()
        .expect("schemas are an object")
        .remove("ErrorBody");
    let (valid, said) = validate(&doc, "dangling-ref");
    assert!(!valid, "a dangling $ref passed: {said}");
}
