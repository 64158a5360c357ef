//! Compiles proto/ with protox (pure Rust): no system protoc is needed.
//! The descriptor set is also written out for gRPC server reflection.

use std::path::PathBuf;

#[allow(
    clippy::print_stdout,
    reason = "cargo reads a build script's directives on stdout"
)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "passerelle/common/v1/common.proto",
        "passerelle/scheme/v1/scheme.proto",
        "passerelle/partner/v1/partner.proto",
        "passerelle/roster/v1/roster.proto",
        "passerelle/settlement/v1/settlement.proto",
        "passerelle/product/v1/product.proto",
        "passerelle/admin/v1/admin.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("passerelle_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Type names (`prost::Name`): the JSON mapping (`json.rs`) finds each
    // message's descriptor by its full name.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
