//! A run's preprocessing is `esegeta explain`'s too: the code lives in [`crate::preprocess`];
//! this name keeps the run's workers reading `super::preprocess`.

pub use crate::preprocess::*;
