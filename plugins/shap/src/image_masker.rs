//! shap's `maskers.Image` for the partition explainer: what hidden pixels become (a constant,
//! or the image blurred by OpenCV's `cv2.blur`, a normalised box filter with reflect-101
//! borders) and the partition tree of axis-aligned boxes its features are grouped in.
//!
//! shap sees an image as `(H, W, C)` and splits a box at the middle of its widest spatial axis
//! (the first of equals), the channel axis only once the box is one pixel wide; its features
//! are the elements of that array, channel last. esegeta keeps `[C, ...spatial]` and the same
//! boxes, spatial axes first and the channel last, in 2D and 3D alike. shap numbers its leaves
//! in reverse of the order it builds them, which mirrors every box through the image's centre:
//! so a box `[lo, hi)` splits into a first child `[hi - w/2, hi)` and a second `[lo, hi - w/2)`
//! (`w/2` rounded down), which is shap's tree exactly, odd widths included.

use anyhow::{bail, Result};

/// A box of features: per axis (spatial axes, then the channel) `[lo, hi)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub lo: Vec<usize>,
    pub hi: Vec<usize>,
}

impl Region {
    pub fn whole(shape: &[usize]) -> Self {
        Region {
            lo: vec![0; shape.len()],
            hi: shape.to_vec(),
        }
    }

    pub fn size(&self) -> usize {
        self.lo.iter().zip(&self.hi).map(|(l, h)| h - l).product()
    }

    /// The two children of shap's partition tree, or `None` for a leaf (one feature).
    pub fn split(&self) -> Option<(Region, Region)> {
        let d = self.lo.len();
        let widths: Vec<usize> = (0..d).map(|a| self.hi[a] - self.lo[a]).collect();
        let spatial = &widths[..d - 1];
        let widest = spatial.iter().copied().max().unwrap_or(0);
        let axis = if widest > 1 {
            spatial
                .iter()
                .position(|&w| w == widest)
                .expect("a widest axis")
        } else if widths[d - 1] > 1 {
            d - 1
        } else {
            return None;
        };
        let cut = self.hi[axis] - widths[axis] / 2;
        let mut first = self.clone();
        let mut second = self.clone();
        first.lo[axis] = cut;
        second.hi[axis] = cut;
        Some((first, second))
    }
}

/// Sets `keep[i] = 1` on the region's elements; `keep` is laid out `[C, ...spatial]` for an
/// image of `shape` (spatial axes, then channels, as regions are).
pub fn fill(keep: &mut [u8], shape: &[usize], region: &Region) {
    runs(shape, region, |start, len| keep[start..start + len].fill(1));
}

/// Calls `f(start, len)` for each contiguous run of the region's elements in the
/// `[C, ...spatial]` layout of an image of `shape` (spatial axes, then channels).
pub fn runs(shape: &[usize], region: &Region, mut f: impl FnMut(usize, usize)) {
    let d = shape.len();
    // Our layout's axes: the channel first, then the spatial axes.
    let order: Vec<usize> = std::iter::once(d - 1).chain(0..d - 1).collect();
    let dims: Vec<usize> = order.iter().map(|&a| shape[a]).collect();
    let mut strides = vec![1usize; d];
    for k in (0..d - 1).rev() {
        strides[k] = strides[k + 1] * dims[k + 1];
    }
    let lo: Vec<usize> = order.iter().map(|&a| region.lo[a]).collect();
    let hi: Vec<usize> = order.iter().map(|&a| region.hi[a]).collect();
    // An odometer over every axis but the last, whose run is contiguous.
    let mut index = lo.clone();
    loop {
        let start: usize = (0..d - 1).map(|k| index[k] * strides[k]).sum::<usize>() + lo[d - 1];
        f(start, hi[d - 1] - lo[d - 1]);
        let mut k = d - 1;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            index[k] += 1;
            if index[k] < hi[k] {
                break;
            }
            index[k] = lo[k];
        }
    }
}

/// What hidden features become.
#[derive(Clone, Debug, PartialEq)]
pub enum Fill {
    Constant(f64),
    /// Box-filter sizes in cv2's order: along the last spatial axis (width) first.
    Blur(Vec<usize>),
}

impl Fill {
    /// shap's `mask_value`: a number, `"blur(kx,ky)"` (`"blur(kx,ky,kz)"` on volumes); the
    /// inpainting maskers are refused with the supported list.
    pub fn parse_name(name: &str, spatial_dims: usize) -> Result<Fill> {
        let trimmed = name.trim();
        if trimmed == "inpaint_telea" || trimmed == "inpaint_ns" {
            bail!(
                "masker: \"{trimmed}\" needs OpenCV's inpainting, which esegeta does not \
                 implement; supported maskers are \"blur(kx,ky)\" (\"blur(kx,ky,kz)\" on \
                 volumes) and a number (the constant hidden pixels take)"
            );
        }
        let inner = trimmed
            .strip_prefix("blur(")
            .and_then(|s| s.strip_suffix(')'));
        let Some(inner) = inner else {
            bail!(
                "masker: unknown masker \"{name}\"; supported are \"blur(kx,ky)\" \
                 (\"blur(kx,ky,kz)\" on volumes) and a number (the constant hidden pixels take)"
            );
        };
        let sizes: Vec<usize> = inner
            .split(',')
            .map(|s| s.trim().parse::<usize>().ok().filter(|&k| k >= 1))
            .collect::<Option<_>>()
            .unwrap_or_default();
        if sizes.len() != spatial_dims {
            bail!(
                "masker: \"{name}\" must give {spatial_dims} positive kernel sizes for this \
                 {spatial_dims}D input, as \"blur({})\" (the first along the last spatial axis, \
                 the image's width, as cv2.blur's ksize)",
                vec!["5"; spatial_dims].join(",")
            );
        }
        Ok(Fill::Blur(sizes))
    }
}

/// `image` (`[C, ...spatial]` values of one example, `spatial` its sizes) box-filtered as
/// `cv2.blur` filters each channel: a mean over `k` elements per axis from `i - k/2`, borders
/// reflected without repeating the edge (reflect-101); sums in f64, as OpenCV's for floats.
pub fn blur(image: &[f32], spatial: &[usize], kernel: &[usize]) -> Vec<f32> {
    let d = spatial.len();
    let mut data: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
    for (j, &k) in kernel.iter().enumerate() {
        let axis = d - 1 - j;
        if k > 1 {
            data = box_along(&data, spatial, axis, k);
        }
    }
    data.into_iter().map(|v| v as f32).collect()
}

/// The running box mean along one spatial axis of `[C, ...spatial]` data.
fn box_along(data: &[f64], spatial: &[usize], axis: usize, k: usize) -> Vec<f64> {
    let n = spatial[axis];
    let inner: usize = spatial[axis + 1..].iter().product();
    let outer = data.len() / (n * inner);
    let anchor = k / 2;
    let taps: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            (0..k)
                .map(|j| reflect101(i as i64 + j as i64 - anchor as i64, n))
                .collect()
        })
        .collect();
    let mut out = vec![0.0; data.len()];
    for o in 0..outer {
        let base = o * n * inner;
        for (i, window) in taps.iter().enumerate() {
            for r in 0..inner {
                let sum: f64 = window.iter().map(|&p| data[base + p * inner + r]).sum();
                out[base + i * inner + r] = sum / k as f64;
            }
        }
    }
    out
}

/// OpenCV's `BORDER_REFLECT_101` index (`gfedcb|abcdefgh|gfedcba`).
fn reflect101(mut p: i64, n: usize) -> usize {
    let n = n as i64;
    if n == 1 {
        return 0;
    }
    while p < 0 || p >= n {
        p = if p < 0 { -p } else { 2 * n - 2 - p };
    }
    p as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_halves_the_widest_axis_from_the_far_end() {
        // (H, W, C) = (5, 3, 2): the 5 rows split first, 2 rows to the first child.
        let root = Region::whole(&[5, 3, 2]);
        let (a, b) = root.split().unwrap();
        assert_eq!((a.lo.clone(), a.hi.clone()), (vec![3, 0, 0], vec![5, 3, 2]));
        assert_eq!((b.lo, b.hi), (vec![0, 0, 0], vec![3, 3, 2]));
        // A pixel splits its channels; one element is a leaf.
        let pixel = Region {
            lo: vec![1, 1, 0],
            hi: vec![2, 2, 2],
        };
        let (c0, c1) = pixel.split().unwrap();
        assert_eq!(c0.size() + c1.size(), 2);
        assert!(c0.split().is_none());
    }

    #[test]
    fn reflect_101_borders() {
        assert_eq!(reflect101(-1, 5), 1);
        assert_eq!(reflect101(5, 5), 3);
        assert_eq!(reflect101(-7, 3), 1);
    }

    #[test]
    fn fill_marks_the_box_in_channel_first_layout() {
        // shape (H, W, C) = (2, 3, 2); keep laid out [C, H, W].
        let mut keep = vec![0u8; 12];
        let r = Region {
            lo: vec![1, 1, 1],
            hi: vec![2, 3, 2],
        };
        fill(&mut keep, &[2, 3, 2], &r);
        let ones: Vec<usize> = (0..12).filter(|&i| keep[i] == 1).collect();
        assert_eq!(ones, vec![6 + 3 + 1, 6 + 3 + 2]);
    }
}
