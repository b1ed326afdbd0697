//! Compiles the orders service's protobuf definitions into Rust at build time.
//!
//! protox parses the `.proto` files in pure Rust (the well-known types are built
//! in), so the build needs neither `protoc` nor a download.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/bff/orders/v1/orders.proto";
    println!("cargo:rerun-if-changed={proto}");
    // `sqlx::migrate!` embeds the migration files when the crate compiles;
    // cargo does not know about them, so a new migration alone would leave a
    // build with the old set. Watching the directories makes it rebuild.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=orders-migrations");
    let descriptors = protox::compile([proto], ["proto"])?;
    // The encoded descriptors serve gRPC reflection, so tools like grpcurl can
    // list and call the service without the .proto file.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("orders_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
