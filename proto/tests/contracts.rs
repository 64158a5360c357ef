//! The contracts as a product: every passerelle `.proto` declares the
//! language options its generated clients use, and they never change
//! within v1 (docs/contracts.md). buf's breaking check (WIRE_JSON, in
//! .ci/run) guards the wire and JSON forms; this guards the generated code's
//! names.

#[test]
fn every_contract_declares_its_language_options() {
    let set: prost_types::FileDescriptorSet =
        prost::Message::decode(passerelle_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut seen = 0;
    for f in set.file {
        let Some(x) = f
            .package()
            .strip_prefix("passerelle.")
            .and_then(|p| p.strip_suffix(".v1"))
        else {
            continue;
        };
        let cap = format!("{}{}", x[..1].to_uppercase(), &x[1..]);
        let o = f
            .options
            .clone()
            .unwrap_or_else(|| panic!("{}: no options", f.name()));
        assert_eq!(
            o.java_package(),
            format!("health.passerelle.{x}.v1"),
            "{}",
            f.name()
        );
        assert!(o.java_multiple_files(), "{}", f.name());
        assert_eq!(
            o.java_outer_classname(),
            format!("{cap}Proto"),
            "{}",
            f.name()
        );
        assert_eq!(
            o.csharp_namespace(),
            format!("Passerelle.{cap}.V1"),
            "{}",
            f.name()
        );
        assert_eq!(
            o.php_namespace(),
            format!("Passerelle\\{cap}\\V1"),
            "{}",
            f.name()
        );
        assert_eq!(
            o.go_package(),
            format!("github.com/passerelle-health/passerelle/gen/go/passerelle/{x}/v1;{x}v1"),
            "{}",
            f.name()
        );
        seen += 1;
    }
    assert_eq!(seen, 7, "every passerelle contract file");
}
