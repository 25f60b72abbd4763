//! PNG heatmaps of 2D maps over their input, with a colour bar.
//!
//! Signed maps use a diverging scale symmetric around zero (blue negative, red positive);
//! non-negative maps a sequential one. The map is blended over the input in grey, more opaque
//! where the attribution is larger, and scaled up so that small inputs stay legible. The
//! drawing helpers are shared with the montages of 3D maps, so both read the same way. A
//! caption under the picture says what png.rs did to the map (channels combined, upsampled).

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use image::{Rgb, RgbImage};
use tch::{Kind, Tensor};

use super::png::Picture;
use super::write_atomically;

const MIN_SIDE: u32 = 256;
pub(super) const BAR_WIDTH: u32 = 16;
pub(super) const GAP: u32 = 8;
/// Room for a label of up to 9 characters of the 8x8 font, after a small gap.
pub(super) const LABEL_GAP: u32 = 4;
pub(super) const LABEL_WIDTH: u32 = 9 * 8;
/// The caption under the pictures: a gap, then lines of the 8x8 font with 2 pixels between.
const CAPTION_GAP: u32 = 6;
const CAPTION_LINE: u32 = 10;

/// The heatmap of a 2D picture (its map `[1, 1, H, W]` on the input's grid) as an image, its
/// caption under it; `out` names it in errors.
pub fn render(picture: &Picture, out: &Path) -> Result<RgbImage> {
    let (values, h, w) = plane(&picture.map, "the map", out)?;
    let background = match picture.input.as_ref().map(|i| plane(i, "the input", out)) {
        Some(Ok((bg, bh, bw))) if (bh, bw) == (h, w) => normalise(&bg),
        _ => vec![0.5; values.len()],
    };
    let scale = Scale::of(&[picture.range.0, picture.range.1]);
    let zoom = (MIN_SIDE / h.min(w) as u32).max(1);
    let (pw, ph) = (w as u32 * zoom, h as u32 * zoom);
    let bar = pw + GAP;
    let width = bar + BAR_WIDTH + LABEL_GAP + LABEL_WIDTH;
    let caption = caption_lines(&picture.notes, width);
    let mut img = RgbImage::from_pixel(width, ph + caption_height(&caption), Rgb([255, 255, 255]));
    let panel = Panel {
        values: &values,
        grey: &background,
        w,
        h,
    };
    draw_panel(&mut img, &panel, &scale, (0, 0), zoom);
    draw_colour_bar(&mut img, &scale, (bar, 0), ph);
    draw_caption(&mut img, &caption, 0, ph);
    Ok(img)
}

/// The caption's parts joined with "; " into lines that fit `width` pixels of the 8x8 font.
pub(super) fn caption_lines(notes: &[String], width: u32) -> Vec<String> {
    let room = (width / 8).max(1) as usize;
    let mut lines: Vec<String> = Vec::new();
    for note in notes {
        match lines.last_mut() {
            Some(line) if line.len() + 2 + note.len() <= room => {
                line.push_str("; ");
                line.push_str(note);
            }
            _ => lines.push(note.clone()),
        }
    }
    lines
}

/// The height the caption takes under the pictures: nothing without one.
pub(super) fn caption_height(lines: &[String]) -> u32 {
    if lines.is_empty() {
        0
    } else {
        CAPTION_GAP + lines.len() as u32 * CAPTION_LINE
    }
}

/// Draws the caption's lines from `(x, y)`, the bottom of the pictures.
pub(super) fn draw_caption(img: &mut RgbImage, lines: &[String], x: u32, y: u32) {
    for (i, line) in lines.iter().enumerate() {
        draw_text(img, line, x, y + CAPTION_GAP + i as u32 * CAPTION_LINE);
    }
}

/// Writes `img` as a PNG under a temporary name, then renames it to `out`.
pub(super) fn save_png(img: &RgbImage, out: &Path) -> Result<()> {
    write_atomically(out, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| anyhow!("cannot write {}: {e}", out.display()))
    })
}

/// One picture of a map over its input: both `w x h`, row-major, the first row on top.
pub(super) struct Panel<'a> {
    pub values: &'a [f64],
    /// The input in [0, 1].
    pub grey: &'a [f64],
    pub w: usize,
    pub h: usize,
}

/// Draws `panel` blended with `scale`, each value a `zoom x zoom` square, from `(x, y)`.
pub(super) fn draw_panel(
    img: &mut RgbImage,
    panel: &Panel,
    scale: &Scale,
    (x, y): (u32, u32),
    zoom: u32,
) {
    for py in 0..panel.h as u32 * zoom {
        for px in 0..panel.w as u32 * zoom {
            let i = (py / zoom) as usize * panel.w + (px / zoom) as usize;
            if x + px < img.width() && y + py < img.height() {
                img.put_pixel(x + px, y + py, blend(panel.grey[i], scale, panel.values[i]));
            }
        }
    }
}

/// Draws the colour bar, maximum on top, `height` tall from `(x, y)`, with the maximum, middle
/// and minimum labelled on its right.
pub(super) fn draw_colour_bar(img: &mut RgbImage, scale: &Scale, (x, y): (u32, u32), height: u32) {
    for dy in 0..height {
        let t = 1.0 - dy as f64 / (height - 1).max(1) as f64; // top is the maximum
        for dx in 0..BAR_WIDTH {
            if x + dx < img.width() && y + dy < img.height() {
                img.put_pixel(x + dx, y + dy, scale.colour_at(t));
            }
        }
    }
    let label_x = x + BAR_WIDTH + LABEL_GAP;
    let middle = (scale.lo + scale.hi) / 2.0;
    for (value, dy) in [
        (scale.hi, 0),
        (middle, height.saturating_sub(8) / 2),
        (scale.lo, height.saturating_sub(8)),
    ] {
        draw_text(img, &label(value), label_x, y + dy);
    }
}

/// A short label for a scale value: plain for ordinary magnitudes, else scientific.
fn label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if (0.01..1000.0).contains(&a) {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// Draws `text` in black with the 8x8 bitmap font, its top-left corner at (x, y).
pub(super) fn draw_text(img: &mut RgbImage, text: &str, x: u32, y: u32) {
    use font8x8::UnicodeFonts;
    for (i, c) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(c) else {
            continue;
        };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                let (px, py) = (x + i as u32 * 8 + col, y + row as u32);
                if bits & (1 << col) != 0 && px < img.width() && py < img.height() {
                    img.put_pixel(px, py, Rgb([0, 0, 0]));
                }
            }
        }
    }
}

/// `[1, C, H, W]` summed over channels to an `H x W` plane, row-major (a picture's map has one
/// channel; the input's channels are summed into its grey).
fn plane(t: &Tensor, what: &str, out: &Path) -> Result<(Vec<f64>, usize, usize)> {
    let size = t.size();
    if size.len() != 4 || size[0] != 1 || size[2..].contains(&0) {
        bail!(
            "{}: a 2D heatmap draws one example, shape [1, C, H, W]; {what} has shape \
             {size:?}. Write .npy for anything else",
            out.display()
        );
    }
    let summed = t
        .to_kind(Kind::Double)
        .sum_dim_intlist(1, false, Kind::Double)
        .squeeze_dim(0);
    let values = Vec::<f64>::try_from(summed.flatten(0, -1))?;
    Ok((values, size[2] as usize, size[3] as usize))
}

fn normalise(values: &[f64]) -> Vec<f64> {
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let range = if hi > lo { hi - lo } else { 1.0 };
    values.iter().map(|v| (v - lo) / range).collect()
}

/// The colour scale: `[lo, hi]` mapped to [0, 1] of a gradient.
pub(super) struct Scale {
    lo: f64,
    hi: f64,
    signed: bool,
}

impl Scale {
    pub(super) fn of(values: &[f64]) -> Self {
        let max_abs = values
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()))
            .max(f64::MIN_POSITIVE);
        let signed = values.iter().any(|&v| v < 0.0);
        if signed {
            Scale {
                lo: -max_abs,
                hi: max_abs,
                signed,
            }
        } else {
            Scale {
                lo: 0.0,
                hi: max_abs,
                signed,
            }
        }
    }

    fn position(&self, v: f64) -> f64 {
        ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }

    fn colour_at(&self, t: f64) -> Rgb<u8> {
        let c = if self.signed {
            colorous::RED_BLUE.eval_continuous(1.0 - t) // RED_BLUE runs red to blue
        } else {
            colorous::INFERNO.eval_continuous(t)
        };
        Rgb([c.r, c.g, c.b])
    }

    /// How strongly `v` shows over the input: its magnitude relative to the scale's.
    fn weight(&self, v: f64) -> f64 {
        let max = self.hi.abs().max(self.lo.abs());
        (v.abs() / max).sqrt().clamp(0.0, 1.0) * 0.85
    }
}

fn blend(grey: f64, scale: &Scale, v: f64) -> Rgb<u8> {
    let colour = scale.colour_at(scale.position(v));
    let a = scale.weight(v);
    let g = grey * 255.0;
    let mix = |c: u8| (a * c as f64 + (1.0 - a) * g).round().clamp(0.0, 255.0) as u8;
    Rgb([mix(colour.0[0]), mix(colour.0[1]), mix(colour.0[2])])
}
