//! PNG montages of 3D maps over their input volume, with one colour bar.
//!
//! Top rows: slices along the last spatial axis, k, which is the axial one for NIfTI volumes
//! stored in the usual voxel order. Bottom row: maximum-intensity projections along i, j and k,
//! each keeping the value of largest magnitude with its sign so that the diverging scale still
//! tells negative from positive, over the input's projection in grey. Every panel shares the
//! scale of heatmap.rs, its blending and the voxel size on screen, so panels compare directly.
//!
//! The report's compact figure shows instead the middle slice along i, j and k and the slice
//! along each through the voxel of largest |map|, above the same projections.
//!
//! Panels are drawn in voxel order, the first remaining axis to the right and the second
//! upward; the affine is not applied, so a volume stored in RAS+ shows in the neurological
//! convention and others show as stored. Voxels are drawn square: anisotropic spacing is ignored.

use std::path::Path;

use anyhow::{bail, Result};
use image::{Rgb, RgbImage};
use tch::{Kind, Tensor};

use super::heatmap::{
    caption_height, caption_lines, draw_caption, draw_colour_bar, draw_panel, draw_text, Panel,
    Scale, BAR_WIDTH, GAP, LABEL_GAP, LABEL_WIDTH,
};
use super::png::Picture;

/// More slices than this get small on screen and repeat what their neighbours show.
const MAX_SLICES: usize = 12;
const MAX_COLUMNS: usize = 6;
/// Each panel's short side is at least this, so 8-voxel volumes stay legible...
const MIN_SHORT_SIDE: u32 = 96;
/// ...unless its long side would pass this, which keeps thin volumes from huge montages.
const MAX_LONG_SIDE: u32 = 384;
const MARGIN: u32 = 8;
/// A line of the 8x8 font over each panel, and a gap under it.
const TITLE_HEIGHT: u32 = 8 + 4;
/// Sets the projections apart from the slices.
const SECTION_GAP: u32 = 3 * GAP;

/// Which slices a montage shows above its projections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slices {
    /// Up to 12 slices along k, gathered where the attribution is.
    ByMass,
    /// The middle slice along each of i, j and k, then the slice along each through the voxel
    /// of largest |map| (the report's compact figure: the middle alone can miss a small hot
    /// spot entirely).
    MiddleAndMax,
}

/// The montage of a 3D picture (its map `[1, 1, D, H, W]`) over its input (drawn in mid grey
/// when absent or of another shape), its caption under it; `out` names it in errors. Returns
/// the image and the slice panels' titles (`mid i=4`, `max k=6`, ...).
pub fn render(picture: &Picture, out: &Path, which: Slices) -> Result<(RgbImage, Vec<String>)> {
    let size = picture.map.size();
    if size.len() != 5 || size[0] != 1 || size[2..].contains(&0) {
        bail!(
            "{}: a PNG of a 3D map draws one example, shape [1, C, D, H, W]; the map has shape \
             {size:?}. Write .nii.gz or .npy for anything else",
            out.display()
        );
    }
    let values = volume(&picture.map);
    let grey = match picture.input.as_ref() {
        Some(input) if input.size().len() == 5 && input.size()[2..] == size[2..] => {
            normalised(&volume(input))
        }
        _ => values.full_like(0.5),
    };
    // The scale of the whole volume (and of the example's other channels): a projection may
    // hide a sign its panel does not show.
    let scale = Scale::of(&[picture.range.0, picture.range.1]);

    let [d, h, w] = [size[2], size[3], size[4]];
    let slices: Vec<(String, i64, i64)> = match which {
        Slices::ByMass => {
            let mass = Vec::<f64>::try_from(values.abs().sum_dim_intlist(
                &[0i64, 1][..],
                false,
                Kind::Double,
            ))?;
            pick_slices(&mass, MAX_SLICES)
                .into_iter()
                .map(|k| (format!("k={k}"), 2, k as i64))
                .collect()
        }
        Slices::MiddleAndMax => {
            let at = values.abs().argmax(None, false).int64_value(&[]);
            let peak = [at / (h * w), at / w % h, at % w];
            let mut s: Vec<(String, i64, i64)> = [d / 2, h / 2, w / 2]
                .iter()
                .enumerate()
                .map(|(axis, &m)| (format!("mid {}={m}", AXES[axis]), axis as i64, m))
                .collect();
            s.extend(
                peak.iter()
                    .enumerate()
                    .map(|(axis, &m)| (format!("max {}={m}", AXES[axis]), axis as i64, m)),
            );
            s
        }
    };
    let mut panels = Vec::new();
    for (title, axis, at) in &slices {
        let (v, g) = (values.select(*axis, *at), grey.select(*axis, *at));
        panels.push((title.clone(), view(&v)?, view(&g)?));
    }
    for (axis, name) in AXES.iter().enumerate() {
        let axis = axis as i64;
        let strongest = values.abs().argmax(axis, true);
        let v = values.gather(axis, &strongest, false).squeeze_dim(axis);
        panels.push((
            format!("MIP {name}"),
            view(&v)?,
            view(&grey.amax(axis, false))?,
        ));
    }

    let zoom = zoom(d.min(h).min(w) as u32, d.max(h).max(w) as u32);
    let layout = Layout::of(&panels, slices.len(), zoom);
    let caption = caption_lines(&picture.notes, layout.width - 2 * MARGIN);
    let height = layout.height + caption_height(&caption);
    let mut img = RgbImage::from_pixel(layout.width, height, Rgb([255, 255, 255]));
    for ((title, (values, pw, ph), (grey, ..)), &(x, y)) in panels.iter().zip(&layout.at) {
        let panel = Panel {
            values,
            grey,
            w: *pw,
            h: *ph,
        };
        // Titles longer than their panel would run into the next one.
        let room = (*pw as u32 * zoom / 8) as usize;
        let title: String = title.chars().take(room.max(1)).collect();
        draw_text(&mut img, &title, x, y - TITLE_HEIGHT);
        draw_panel(&mut img, &panel, &scale, (x, y), zoom);
    }
    draw_colour_bar(&mut img, &scale, layout.bar, layout.bar_height);
    draw_caption(&mut img, &caption, MARGIN, layout.height - MARGIN);
    Ok((img, slices.into_iter().map(|(t, ..)| t).collect()))
}

const AXES: [&str; 3] = ["i", "j", "k"];

/// Where each panel goes (top-left corners), the colour bar and the image's size.
struct Layout {
    at: Vec<(u32, u32)>,
    bar: (u32, u32),
    bar_height: u32,
    width: u32,
    height: u32,
}

type Drawn = (String, (Vec<f64>, usize, usize), (Vec<f64>, usize, usize));

impl Layout {
    /// The first `slices` panels in a grid of at most `MAX_COLUMNS`, balanced across its rows;
    /// the rest (the projections) in one row under it.
    fn of(panels: &[Drawn], slices: usize, zoom: u32) -> Self {
        let size = |p: &Drawn| (p.1 .1 as u32 * zoom, p.1 .2 as u32 * zoom);
        let rows = slices.div_ceil(MAX_COLUMNS).max(1);
        let columns = slices.div_ceil(rows).max(1);
        let mut at = Vec::with_capacity(panels.len());
        let (mut right, mut y) = (0, MARGIN + TITLE_HEIGHT);
        for row in panels[..slices].chunks(columns) {
            let mut x = MARGIN;
            for p in row {
                at.push((x, y));
                x += size(p).0 + GAP;
            }
            right = right.max(x - GAP);
            y += row.iter().map(|p| size(p).1).max().unwrap_or(0) + TITLE_HEIGHT + GAP;
        }
        y += SECTION_GAP - GAP;
        let mut x = MARGIN;
        for p in &panels[slices..] {
            at.push((x, y));
            x += size(p).0 + GAP;
        }
        right = right.max(x - GAP);
        let bottom = y + panels[slices..]
            .iter()
            .map(|p| size(p).1)
            .max()
            .unwrap_or(0);
        let bar_x = right + 2 * GAP;
        let top = MARGIN + TITLE_HEIGHT;
        Layout {
            at,
            bar: (bar_x, top),
            bar_height: bottom - top,
            width: bar_x + BAR_WIDTH + LABEL_GAP + LABEL_WIDTH + MARGIN,
            height: bottom + MARGIN,
        }
    }
}

/// One zoom for every panel, so a voxel has the same size everywhere.
fn zoom(short: u32, long: u32) -> u32 {
    MIN_SHORT_SIDE
        .div_ceil(short.max(1))
        .min(MAX_LONG_SIDE / long.max(1))
        .max(1)
}

/// `[1, C, D, H, W]` summed over channels to `[D, H, W]` (a picture's map has one channel; the
/// input's are summed into its grey).
fn volume(t: &Tensor) -> Tensor {
    t.to_device(tch::Device::Cpu)
        .to_kind(Kind::Double)
        .sum_dim_intlist(1, false, Kind::Double)
        .squeeze_dim(0)
}

/// The volume mapped from its range onto [0, 1], one range for every panel.
fn normalised(t: &Tensor) -> Tensor {
    let (lo, hi) = (t.min().double_value(&[]), t.max().double_value(&[]));
    let range = if hi > lo { hi - lo } else { 1.0 };
    (t - lo) / range
}

/// A plane `[A, B]` as a panel, A to the right and B upward: row-major values, width, height.
fn view(t: &Tensor) -> Result<(Vec<f64>, usize, usize)> {
    let (a, b) = (t.size()[0] as usize, t.size()[1] as usize);
    let rows = t.transpose(0, 1).flip([0]).contiguous();
    Ok((Vec::<f64>::try_from(rows.flatten(0, -1))?, a, b))
}

/// Up to `n` slices, in order, given the attribution `mass` of each. They sit at evenly spaced
/// quantiles of the mass, so that a small hot spot gets several slices instead of falling
/// between evenly spaced ones; where few slices hold all the mass, the widest gaps are filled,
/// so that the montage still shows where the attribution is not.
fn pick_slices(mass: &[f64], n: usize) -> Vec<usize> {
    let count = mass.len();
    if count <= n {
        return (0..count).collect();
    }
    let total: f64 = mass.iter().sum();
    let mut picked = Vec::with_capacity(n);
    if total > 0.0 && total.is_finite() {
        let mut cumulative = 0.0;
        let mut q = 0;
        for (k, m) in mass.iter().enumerate() {
            cumulative += m;
            while q < n && cumulative >= (q as f64 + 0.5) / n as f64 * total {
                if picked.last() != Some(&k) {
                    picked.push(k);
                }
                q += 1;
            }
        }
    }
    while picked.len() < n {
        // Gaps between picked slices, with the volume's ends just outside it.
        let bounds: Vec<i64> = std::iter::once(-1)
            .chain(picked.iter().map(|&k| k as i64))
            .chain(std::iter::once(count as i64))
            .collect();
        let (a, b) = bounds
            .windows(2)
            .map(|w| (w[0], w[1]))
            .max_by_key(|(a, b)| b - a)
            .unwrap_or((-1, count as i64));
        let k = ((a + b).div_euclid(2)).clamp(0, count as i64 - 1) as usize;
        match picked.binary_search(&k) {
            Ok(_) => break, // no gap left; cannot happen while count > n
            Err(at) => picked.insert(at, k),
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colourfulness(img: &RgbImage, (x, y): (u32, u32), side: u32) -> u64 {
        let mut sum = 0;
        for py in y..y + side {
            for px in x..x + side {
                let [r, g, b] = img.get_pixel(px, py).0;
                sum += (r.max(g).max(b) - r.min(g).min(b)) as u64;
            }
        }
        sum
    }

    fn blob() -> (Tensor, Tensor) {
        let map = Tensor::zeros([1, 2, 8, 8, 8], (Kind::Float, tch::Device::Cpu));
        let _ = map
            .narrow(2, 5, 2)
            .narrow(3, 1, 2)
            .narrow(4, 6, 2)
            .fill_(1.0);
        let input = Tensor::arange(512, (Kind::Float, tch::Device::Cpu)).view([1, 1, 8, 8, 8]);
        (map, input)
    }

    #[test]
    fn a_blob_shows_in_its_slice_and_not_in_an_empty_one() {
        let (map, input) = blob();
        let out = std::env::temp_dir().join(format!("esegeta-montage-{}.png", std::process::id()));
        crate::io::png::write(&map, &input, &out, crate::config::PngChannels::Sum).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        let _ = std::fs::remove_file(&out);

        // 8 slices as 2 rows of 4 panels of 8 voxels x12, then the row of projections, then
        // the caption's line ("sum of 2 ch").
        let side = 96;
        let grid = 4 * side + 3 * GAP;
        let width = MARGIN + grid + 2 * GAP + BAR_WIDTH + LABEL_GAP + LABEL_WIDTH + MARGIN;
        let slices = 2 * (TITLE_HEIGHT + side) + GAP;
        let height = MARGIN + slices + SECTION_GAP + TITLE_HEIGHT + side + MARGIN;
        let caption = caption_height(&["sum of 2 ch".to_string()]);
        assert_eq!(img.dimensions(), (width, height + caption));

        // k=6 is the third panel of the second row; k=1 the second of the first.
        let second_row = MARGIN + 2 * TITLE_HEIGHT + side + GAP;
        let blob = colourfulness(&img, (MARGIN + 2 * (side + GAP), second_row), side);
        let empty = colourfulness(&img, (MARGIN + side + GAP, MARGIN + TITLE_HEIGHT), side);
        assert_eq!(empty, 0, "an empty slice shows the input in grey");
        assert!(blob > 0, "the blob's slice is coloured");
    }

    #[test]
    fn the_compact_figure_slices_through_the_maximum_as_well_as_the_middle() {
        let (map, input) = blob();
        let pictures = crate::io::png::pictures(
            &map,
            &input,
            crate::config::PngChannels::Sum,
            Path::new("m.png"),
        )
        .unwrap();
        let (img, titles) = render(&pictures[0], Path::new("m.png"), Slices::MiddleAndMax).unwrap();
        assert_eq!(
            titles,
            ["mid i=4", "mid j=4", "mid k=4", "max i=5", "max j=1", "max k=6"]
        );
        // One row of six 96-pixel panels: the middle ones miss the blob, the others hold it.
        let side = 96;
        for (n, coloured) in [false, false, false, true, true, true].iter().enumerate() {
            let x = MARGIN + n as u32 * (side + GAP);
            let c = colourfulness(&img, (x, MARGIN + TITLE_HEIGHT), side);
            assert_eq!(c > 0, *coloured, "panel {n} ({})", titles[n]);
        }
    }

    #[test]
    fn a_batch_gives_one_montage_per_example() {
        let map = Tensor::zeros([2, 1, 4, 4, 4], (Kind::Float, tch::Device::Cpu));
        let dir = std::env::temp_dir().join(format!("esegeta-montage-b-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = crate::io::png::write(
            &map,
            &map,
            &dir.join("m.png"),
            crate::config::PngChannels::Sum,
        )
        .unwrap();
        assert_eq!(files, [dir.join("m_b0.png"), dir.join("m_b1.png")]);
        assert!(files.iter().all(|f| f.is_file()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn slices_gather_where_the_attribution_is_and_keep_some_context() {
        let mut mass = vec![0.0; 100];
        mass[40..43].copy_from_slice(&[1.0, 5.0, 1.0]);
        let picked = pick_slices(&mass, 12);
        assert_eq!(picked.len(), 12);
        assert!(picked.windows(2).all(|w| w[0] < w[1]), "{picked:?}");
        assert!(
            [40, 41, 42].iter().all(|k| picked.contains(k)),
            "{picked:?}"
        );
        assert!(picked[0] < 20 && picked[11] > 80, "{picked:?}");
        assert_eq!(pick_slices(&[0.0; 5], 12), vec![0, 1, 2, 3, 4]);
        assert_eq!(pick_slices(&[0.0; 24], 12).len(), 12);
    }
}
