//! Compiles carbonapi's protobuf definitions (`proto/*.proto`) into Rust types with prost.
//!
//! The `.proto` files are parsed by protox, a protobuf compiler written in Rust, so a fresh
//! machine needs nothing but the Rust toolchain (no `protoc` binary). The generated modules land
//! in `OUT_DIR` and are included by `src/render/format/carbonapi.rs`.

use std::error::Error;

const PROTOS: [&str; 2] = ["proto/carbonapi_v2_pb.proto", "proto/carbonapi_v3_pb.proto"];

fn main() -> Result<(), Box<dyn Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
