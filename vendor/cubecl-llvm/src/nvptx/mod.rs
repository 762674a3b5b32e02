//! NVPTX target: only the PTX version table, which cubecl-cuda reads for every backend.

pub mod ptx_version;
