//! Tensors crossing the plugin boundary as raw `at::Tensor` pointers.
//!
//! Ownership is explicit: a [`TensorRef`] borrows a tensor the caller keeps (it is never freed
//! through the reference), a [`TensorHandle`] owns one (it frees it when dropped, on whichever
//! side of the boundary that happens; both sides link the same libtorch). At every moment
//! exactly one `TensorHandle` or `tch::Tensor` owns a given pointer.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;

use abi_stable::StableAbi;
use tch::Tensor;

/// An owned tensor in transit. Convert with [`TensorHandle::new`] and [`TensorHandle::into_tensor`].
#[repr(transparent)]
#[derive(StableAbi)]
pub struct TensorHandle {
    ptr: *mut c_void,
}

// The pointee is a reference-counted at::Tensor, safe to move between threads like tch::Tensor.
unsafe impl Send for TensorHandle {}

impl TensorHandle {
    /// Takes ownership of `tensor`; the handle now frees it unless turned back into a tensor.
    pub fn new(tensor: Tensor) -> Self {
        let tensor = ManuallyDrop::new(tensor);
        TensorHandle {
            ptr: tensor.as_ptr() as *mut c_void,
        }
    }

    /// Gives ownership back to a `tch::Tensor`.
    pub fn into_tensor(self) -> Tensor {
        let this = ManuallyDrop::new(self);
        // SAFETY: `ptr` came from a live tch::Tensor whose ownership this handle held alone;
        // `from_ptr` takes that ownership (it does not copy, despite its doc comment).
        unsafe { Tensor::from_ptr(this.ptr as *mut torch_sys::C_tensor) }
    }
}

impl Drop for TensorHandle {
    fn drop(&mut self) {
        // SAFETY: as in `into_tensor`; the tensor's drop frees the at::Tensor once.
        drop(unsafe { Tensor::from_ptr(self.ptr as *mut torch_sys::C_tensor) });
    }
}

/// A borrowed tensor, valid for `'a`. The callee never frees it; [`TensorRef::to_tensor`] gives
/// the callee its own handle to the same storage and autograd history.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy)]
pub struct TensorRef<'a> {
    ptr: *mut c_void,
    _borrow: PhantomData<&'a ()>,
}

impl<'a> TensorRef<'a> {
    pub fn new(tensor: &'a Tensor) -> Self {
        TensorRef {
            ptr: tensor.as_ptr() as *mut c_void,
            _borrow: PhantomData,
        }
    }

    /// A new owned `at::Tensor` sharing the borrowed one's storage and autograd node.
    pub fn to_tensor(&self) -> Tensor {
        // SAFETY: the pointer is valid for 'a; clone_from_ptr makes a shallow copy we own.
        unsafe { Tensor::clone_from_ptr(self.ptr as *mut torch_sys::C_tensor) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_gives_back_the_same_tensor() {
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let ptr = t.as_ptr();
        let back = TensorHandle::new(t).into_tensor();
        assert_eq!(back.as_ptr(), ptr, "no copy, no new at::Tensor");
        assert_eq!(Vec::<f32>::try_from(&back).unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn a_reference_shares_storage_and_autograd_identity() {
        let x = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let borrowed = TensorRef::new(&x).to_tensor();
        assert_eq!(borrowed.data_ptr(), x.data_ptr());
        let y = (&borrowed * 3.0).sum(tch::Kind::Float);
        let grads = Tensor::run_backward(&[y], &[&x], false, false);
        assert_eq!(Vec::<f32>::try_from(&grads[0]).unwrap(), vec![3.0, 3.0]);
        drop(borrowed);
        assert_eq!(
            x.size(),
            vec![2],
            "dropping the callee's tensor leaves the caller's alive"
        );
    }
}
