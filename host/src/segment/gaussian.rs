//! Gaussian smoothing as `scipy.ndimage.gaussian_filter` (which scikit-image's `gaussian`
//! calls): a separable kernel per spatial axis, truncated at 4 sigma (radius
//! `int(4 * sigma + 0.5)`), normalised to sum 1, with the `reflect` boundary (`d c b a | a b c
//! d`); an axis whose sigma is 0 is left alone. Channels are never mixed.

use super::Image;

/// `image` smoothed with `sigma` per spatial axis `(z, y, x)`.
pub fn smooth(image: &Image, sigma: [f64; 3]) -> Image {
    let mut data = image.data.clone();
    for (axis, &s) in sigma.iter().enumerate() {
        if s > 1e-15 {
            data = along(&data, image, axis, &kernel(s));
        }
    }
    image.with_data(image.channels, data)
}

fn kernel(sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as i64;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|i| (-0.5 * (i * i) as f64 / (sigma * sigma)).exp())
        .collect();
    let sum: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / sum).collect()
}

/// The index `i` (possibly outside `0..n`) reflected into it, the edge sample repeated.
fn reflect(i: i64, n: i64) -> usize {
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

fn along(data: &[f64], image: &Image, axis: usize, weights: &[f64]) -> Vec<f64> {
    let [d, h, w] = image.dims;
    let c = image.channels;
    let strides = [h * w * c, w * c, c];
    let n = image.dims[axis] as i64;
    let radius = (weights.len() / 2) as i64;
    let mut out = vec![0.0; data.len()];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let at = [z, y, x];
                let base =
                    z * strides[0] + y * strides[1] + x * strides[2] - at[axis] * strides[axis];
                let pos = at[axis] as i64;
                for ch in 0..c {
                    let mut acc = 0.0;
                    for (k, wk) in weights.iter().enumerate() {
                        let j = reflect(pos + k as i64 - radius, n);
                        acc += wk * data[base + j * strides[axis] + ch];
                    }
                    out[base + at[axis] * strides[axis] + ch] = acc;
                }
            }
        }
    }
    out
}
