//! The checked-in OpenAPI description matches the contracts: regenerated
//! from the descriptors and compared. After a `.proto` change, rewrite it
//! with `PASSERELLE_BLESS=1 cargo test -p passerelle-proto --test openapi`.

#[test]
fn the_checked_in_openapi_matches_the_descriptors() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/openapi/passerelle.openapi.json");
    let generated = passerelle_proto::openapi::text();
    if std::env::var_os("PASSERELLE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        on_disk == generated,
        "{} is not what the .proto files give: regenerate it with PASSERELLE_BLESS=1 cargo test -p passerelle-proto --test openapi",
        path.display()
    );
}
