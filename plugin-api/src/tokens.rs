//! Transformer token layers as spatial layers, for every CAM and spatial layer method: a
//! ViT's tokens `[B, n_cls + h*w, C]` (or a 3D patch embedding's `[B, n + d*h*w, C]`) lose
//! their leading class/register tokens and go onto the patch grid `[B, C, h, w]`, and Swin's
//! channels-last `[B, H, W, C]` becomes `[B, C, H, W]`, as pytorch-grad-cam's
//! `reshape_transform` does by hand. The grid is the patch embedding's (found by the host in
//! the graph) or the methods' `token_grid` parameter. Layers already channels-first (CNNs)
//! take exactly the path they took before: one shape check, no extra pass, unless a
//! Transpose feeds them (then the host runs the model once to learn the grid).
//!
//! Gradients are reshaped with their activations, so Grad-CAM's channel weights are the
//! means over the patch tokens only.

use anyhow::{bail, Result};
use tch::Tensor;

use crate::context::{Context, Tap};

/// How a tapped layer's value lies, and so how it becomes `[B, C, ...grid]`.
#[derive(Clone, Debug, PartialEq)]
pub enum Layout {
    /// Already `[B, C, ...spatial]`, or nothing to reshape: left as it is.
    Spatial,
    /// Tokens `[B, leading + prod(grid), C]`: the `leading` (class, register) tokens are
    /// dropped, the rest laid out row-major on `grid`.
    Tokens { leading: i64, grid: Vec<i64> },
    /// Channels last, `[B, ...grid, C]` (Swin's stages).
    ChannelsLast,
}

impl Layout {
    /// `t` (a layer value or its gradient, shaped as the layout says) as `[B, C, ...grid]`.
    pub fn apply(&self, t: &Tensor) -> Result<Tensor> {
        let size = t.size();
        let rank = size.len() as i64;
        Ok(match self {
            Layout::Spatial => t.shallow_clone(),
            Layout::Tokens { leading, grid } => {
                let n = grid.iter().product::<i64>();
                let mut shape = vec![size[0]];
                shape.extend(grid);
                shape.push(size[2]);
                let s = grid.len() as i64;
                let order: Vec<i64> = std::iter::once(0)
                    .chain(std::iter::once(s + 1))
                    .chain(1..=s)
                    .collect();
                t.f_narrow(1, *leading, n)?
                    .f_reshape(&shape)?
                    .f_permute(&order)?
                    .f_contiguous()?
            }
            Layout::ChannelsLast => {
                let order: Vec<i64> = std::iter::once(0)
                    .chain(std::iter::once(rank - 1))
                    .chain(1..rank - 1)
                    .collect();
                t.f_permute(&order)?.f_contiguous()?
            }
        })
    }
}

impl Context<'_> {
    /// [`Context::tap_gradient`] with the gradient and the activation both on the layer's
    /// spatial grid (`[B, C, ...grid]`, see [`Layout`]); `token_grid` is the methods'
    /// parameter of that name.
    pub fn spatial_tap_gradient(
        &self,
        inputs: &Tensor,
        target: i64,
        tap: Tap<'_>,
        token_grid: Option<&[i64]>,
    ) -> Result<(Tensor, Tensor)> {
        let (grad, activation) = self.tap_gradient(inputs, target, tap)?;
        let layout = self.token_layout(inputs, tap, token_grid, &activation.size())?;
        Ok((layout.apply(&grad)?, layout.apply(&activation)?))
    }

    /// The layer's value at `inputs` without autograd history, on its spatial grid.
    pub fn spatial_layer_value(
        &self,
        inputs: &Tensor,
        tap: Tap<'_>,
        token_grid: Option<&[i64]>,
    ) -> Result<Tensor> {
        let (_, mut values) = tch::no_grad(|| self.forward_taps(inputs, &[tap]))?;
        let value = values.remove(0).detach();
        self.token_layout(inputs, tap, token_grid, &value.size())?
            .apply(&value)
    }

    /// The layout of `tap`'s value of shape `shape` at `inputs`.
    pub fn token_layout(
        &self,
        inputs: &Tensor,
        tap: Tap<'_>,
        token_grid: Option<&[i64]>,
        shape: &[i64],
    ) -> Result<Layout> {
        let spatial_rank = inputs.dim().saturating_sub(2);
        layout_of(
            shape,
            spatial_rank,
            tap.layer,
            token_grid,
            |behind_transpose| self.patch_grid(inputs, tap, behind_transpose),
        )
    }
}

/// The layout of a layer value of `shape` for an input with `spatial_rank` spatial dims.
/// `infer(behind_transpose)` asks the graph for the patch grid (empty: none).
pub fn layout_of(
    shape: &[i64],
    spatial_rank: usize,
    layer: &str,
    token_grid: Option<&[i64]>,
    infer: impl FnOnce(bool) -> Result<Vec<i64>>,
) -> Result<Layout> {
    if let Some(grid) = token_grid {
        check_token_grid(grid, spatial_rank)?;
    }
    if !(2..=3).contains(&spatial_rank) {
        return Ok(Layout::Spatial);
    }
    if shape.len() == 3 {
        let inferred = infer(false)?;
        let grid = match token_grid {
            Some(grid) => same_patch_count(grid, &inferred, layer)?,
            None => inferred,
        };
        return tokens(shape, &grid, layer, token_grid.is_some());
    }
    if shape.len() != spatial_rank + 2 {
        return Ok(Layout::Spatial);
    }
    match token_grid {
        Some(grid) => explicit_channels(shape, grid, layer),
        None => {
            let grid = infer(true)?;
            let last = !grid.is_empty()
                && on_grid(&shape[1..=spatial_rank], &grid)
                && !on_grid(&shape[2..], &grid);
            Ok(if last {
                Layout::ChannelsLast
            } else {
                Layout::Spatial
            })
        }
    }
}

/// `token_grid` as given: one positive size per spatial dimension of the input.
fn check_token_grid(grid: &[i64], spatial_rank: usize) -> Result<()> {
    if grid.len() != spatial_rank || grid.iter().any(|&n| n < 1) {
        bail!(
            "token_grid {grid:?} should give the patch grid as {spatial_rank} positive sizes, \
             one per spatial dimension of the input (e.g. [8, 8] for a 2D ViT with 8x8 \
             patches)"
        );
    }
    Ok(())
}

/// `token_grid`, refused when the patch embedding (`inferred`, empty if none) makes another
/// number of patches: its tokens are then not on that grid. Another shape of as many patches
/// is the user's to choose.
fn same_patch_count(grid: &[i64], inferred: &[i64], layer: &str) -> Result<Vec<i64>> {
    let (n, m) = (
        grid.iter().product::<i64>(),
        inferred.iter().product::<i64>(),
    );
    if !inferred.is_empty() && n != m {
        bail!(
            "token_grid {grid:?} has {n} patches, but the patch embedding that feeds layer \
             `{layer}` makes {m} ({inferred:?}); give that grid or drop token_grid"
        );
    }
    Ok(grid.to_vec())
}

/// Tokens `[B, T, C]` on `grid` (empty: none could be inferred).
fn tokens(shape: &[i64], grid: &[i64], layer: &str, given: bool) -> Result<Layout> {
    let t = shape[1];
    if grid.is_empty() {
        let side = (t as f64).sqrt().floor() as i64;
        bail!(
            "layer `{layer}` has tokens {shape:?} but no patch grid could be inferred (no \
             convolution whose kernel equals its stride feeds it); give token_grid, e.g. \
             [{side}, {side}]"
        );
    }
    let n: i64 = grid.iter().product();
    // More leading tokens than patches would mean the grid is not the tokens'.
    if t < n || t - n >= n {
        let source = if given {
            "token_grid"
        } else {
            "the patch grid inferred from the patch embedding,"
        };
        bail!(
            "layer `{layer}` has {t} tokens ({shape:?}), which {source} {grid:?} ({n} patches) \
             does not fit: the tokens must be a few leading class tokens followed by one per \
             patch; give the token_grid the layer's tokens are on"
        );
    }
    Ok(Layout::Tokens {
        leading: t - n,
        grid: grid.to_vec(),
    })
}

/// A value with the input's rank and an explicit `token_grid`: channels last when its
/// middle dims are the grid, channels first when its trailing ones are.
fn explicit_channels(shape: &[i64], grid: &[i64], layer: &str) -> Result<Layout> {
    let s = grid.len();
    if shape[1..=s] == *grid {
        Ok(Layout::ChannelsLast)
    } else if shape[2..] == *grid {
        Ok(Layout::Spatial)
    } else {
        bail!(
            "token_grid {grid:?} is not the grid of layer `{layer}` ({shape:?}: neither \
             {:?} channels last nor {:?} channels first); give the layer's grid or drop \
             token_grid",
            &shape[1..=s],
            &shape[2..]
        )
    }
}

/// Whether `dims` is the patch grid `grid` halved k >= 0 times (rounding up), as Swin's patch
/// merging leaves it stage by stage.
fn on_grid(dims: &[i64], grid: &[i64]) -> bool {
    dims.len() == grid.len()
        && (0..8).any(|k| {
            dims.iter()
                .zip(grid)
                .all(|(&d, &g)| d == (g + (1 << k) - 1) >> k)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn none(_: bool) -> Result<Vec<i64>> {
        Ok(Vec::new())
    }

    #[test]
    fn vit_tokens_drop_the_class_token_and_go_row_major_onto_the_grid() {
        // [1, 1 + 2*3, 2]: token 0 is the class token, token 1 + 3y + x sits at (y, x).
        let t = Tensor::arange(14, (Kind::Float, Device::Cpu)).view([1, 7, 2]);
        let layout = layout_of(&t.size(), 2, "l", Some(&[2, 3]), none).unwrap();
        assert_eq!(
            layout,
            Layout::Tokens {
                leading: 1,
                grid: vec![2, 3]
            }
        );
        let map = layout.apply(&t).unwrap();
        assert_eq!(map.size(), vec![1, 2, 2, 3]);
        // Channel 1 at (1, 0) is token 1 + 3 = 4's second value, 4 * 2 + 1.
        assert_eq!(map.double_value(&[0, 1, 1, 0]), 9.0);
    }

    #[test]
    fn channels_last_is_recognised_on_the_halved_grid() {
        let infer = |_: bool| Ok(vec![8, 8]);
        let swin = layout_of(&[1, 4, 4, 48], 2, "l", None, infer).unwrap();
        assert_eq!(swin, Layout::ChannelsLast);
        let cnn = layout_of(&[1, 48, 4, 4], 2, "l", None, infer).unwrap();
        assert_eq!(cnn, Layout::Spatial);
        let t = Tensor::arange(6, (Kind::Float, Device::Cpu)).view([1, 1, 2, 3]);
        let map = Layout::ChannelsLast.apply(&t).unwrap();
        assert_eq!(map.size(), vec![1, 3, 1, 2]);
        assert_eq!(map.double_value(&[0, 2, 0, 1]), 5.0);
    }

    #[test]
    fn a_grid_that_does_not_fit_is_refused_by_name() {
        // 3x3 patches and 8 class tokens would fit 17 tokens: the patch embedding says no.
        let vit = |_: bool| Ok(vec![4, 4]);
        let err = layout_of(&[1, 17, 32], 2, "enc", Some(&[3, 3]), vit).unwrap_err();
        assert!(err.to_string().contains("token_grid [3, 3] has 9"), "{err}");
        let err = layout_of(&[1, 17, 32], 2, "enc", Some(&[2, 2]), none).unwrap_err();
        assert!(err.to_string().contains("which token_grid [2, 2]"), "{err}");
        let ok = layout_of(&[1, 17, 32], 2, "enc", Some(&[2, 8]), vit).unwrap();
        assert_eq!(
            ok,
            Layout::Tokens {
                leading: 1,
                grid: vec![2, 8]
            }
        );
        let err = layout_of(&[1, 65, 32], 2, "enc", None, none).unwrap_err();
        assert!(
            err.to_string().contains("give token_grid, e.g. [8, 8]"),
            "{err}"
        );
        let err = layout_of(&[1, 17, 32], 2, "enc", Some(&[4, 4, 1]), none).unwrap_err();
        assert!(err.to_string().contains("2 positive sizes"), "{err}");
    }
}
