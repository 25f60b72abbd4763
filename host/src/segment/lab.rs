//! sRGB in [0, 1] to CIE Lab under illuminant D65 (2 degree observer), as scikit-image's
//! `rgb2lab`: the sRGB companding, its `xyz_from_rgb` matrix, then `xyz2lab` with the
//! reference white (0.95047, 1, 1.08883) and the linear segment below 0.008856.

use super::Image;

const XYZ_FROM_RGB: [[f64; 3]; 3] = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
];
const WHITE: [f64; 3] = [0.95047, 1.0, 1.08883];

/// `image` (3 channels, RGB) in Lab.
pub fn rgb2lab(image: &Image) -> Image {
    debug_assert_eq!(image.channels, 3);
    let mut out = Vec::with_capacity(image.data.len());
    for rgb in image.data.chunks_exact(3) {
        let linear = [expand(rgb[0]), expand(rgb[1]), expand(rgb[2])];
        let mut f = [0.0; 3];
        for (row, (out, white)) in XYZ_FROM_RGB.iter().zip(f.iter_mut().zip(WHITE)) {
            let xyz = row[0] * linear[0] + row[1] * linear[1] + row[2] * linear[2];
            let t = xyz / white;
            *out = if t > 0.008856 {
                t.cbrt()
            } else {
                7.787 * t + 16.0 / 116.0
            };
        }
        out.extend([
            116.0 * f[1] - 16.0,
            500.0 * (f[0] - f[1]),
            200.0 * (f[1] - f[2]),
        ]);
    }
    image.with_data(3, out)
}

/// sRGB companding undone: the linear intensity of a gamma-encoded value.
fn expand(v: f64) -> f64 {
    if v > 0.04045 {
        ((v + 0.055) / 1.055).powf(2.4)
    } else {
        v / 12.92
    }
}
