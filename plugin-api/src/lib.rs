//! The contract between the esegeta host and its method plugins.
//!
//! `abi` holds the `#[repr(C)]` types that cross the boundary (checked by abi_stable when a
//! plugin is loaded); everything else is the safe side a plugin author writes against:
//! [`Method`] for one explanation method, [`Context`] for what the host offers it, and
//! [`export_plugin!`] to turn a crate of registered methods into a loadable cdylib.

pub mod abi;
mod context;
mod export;
pub mod maps;
mod method;
pub mod numpy_random;
mod optim;
pub mod params;
mod precision;
pub mod segmentation;
mod tensor;
pub mod tokens;

pub use abi::{
    panic_message, LogLevel, MethodInfo, MethodKind, Needs, ABI_VERSION, LIBTORCH_VERSION,
};
pub use context::{Context, Pass, RuleGradients, Tap};
pub use method::{Attribution, ErasedMethod, Method, MethodEntry, MethodMeta};
pub use optim::Adam;
pub use params::{broadcast_to, TensorOrScalar};
pub use precision::accumulation;
pub use segmentation::FeatureMaskSpec;
pub use tensor::{TensorHandle, TensorRef};

// Re-exported so that plugins name the exact versions the ABI was built with.
pub use abi_stable;
pub use anyhow;
pub use inventory;
pub use schemars;
pub use serde;
pub use serde_json;
pub use tch;
