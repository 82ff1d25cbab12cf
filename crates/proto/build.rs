//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates tonic code.
//! The encoded descriptor set is written next to the code for reflection and JSON transcoding.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "tongban/common/v1/common.proto",
        "tongban/intake/v1/intake.proto",
        "tongban/approval/v1/approval.proto",
        "tongban/dispatch/v1/dispatch.proto",
        "tongban/notification/v1/notification.proto",
        "tongban/events/v1/events.proto",
        "tongban/ops/v1/dead_letters.proto",
    ];
    let fds = protox::compile(files.iter().map(|f| root.join(f)), [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("tongban_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
