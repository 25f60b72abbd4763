//! Parsers of `esegeta explain`'s compound flag values (`--patch 96x96x64,0.5`,
//! `--resize 224,224`, `--mean 0.485,0.456,0.406`), each with an error that shows a valid
//! example, so that clap reports it against the flag before any work starts.

use crate::patch::PatchSpec;

/// A spatial size: one whole number >= 1 per spatial dimension (`--resize`, `--crop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size(pub Vec<i64>);

impl std::str::FromStr for Size {
    type Err = String;

    /// `224,224` or `96,96,64`; `224x224` is accepted too.
    fn from_str(s: &str) -> Result<Self, String> {
        sizes(s, &[',', 'x'])
            .map(Size)
            .ok_or_else(|| format!("`{s}` is not a size: give one whole number >= 1 per spatial dimension, separated by commas, e.g. 224,224 (2D) or 96,96,64 (3D)"))
    }
}

/// Per-channel values (`--mean`, `--std`): numbers separated by commas.
#[derive(Clone, Debug, PartialEq)]
pub struct Channels(pub Vec<f64>);

impl std::str::FromStr for Channels {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let values: Option<Vec<f64>> = s
            .split(',')
            .map(|v| v.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect();
        values
            .filter(|v| !v.is_empty())
            .map(Channels)
            .ok_or_else(|| format!("`{s}` is not a list of numbers: give one per channel, separated by commas, e.g. 0.485,0.456,0.406"))
    }
}

/// `--patch SIZE[,OVERLAP]`: the window size, `64` (every spatial dimension) or `96x96x64`
/// (one per dimension), then optionally the fraction of a window shared with its neighbour.
pub fn patch(s: &str) -> Result<PatchSpec, String> {
    let bad = || {
        format!(
            "`{s}` is not a patch: give the window size as 64 (every spatial dimension) or \
             96x96x64 (one per dimension, separated by x), optionally followed by ,OVERLAP in \
             [0, 1), e.g. 96x96x64,0.5"
        )
    };
    let (size, overlap) = match s.split_once(',') {
        Some((size, overlap)) => (size, Some(overlap)),
        None => (s, None),
    };
    let size = sizes(size, &['x']).ok_or_else(bad)?;
    let overlap = match overlap {
        None => 0.25,
        Some(o) => {
            let o: f64 = o.trim().parse().map_err(|_| bad())?;
            if !(0.0..1.0).contains(&o) {
                return Err(format!(
                    "the patch overlap in `{s}` is {o}; it must be at least 0 and less than 1 \
                     (e.g. 0.25 or 0.5); window sizes are separated by x (64x64,0.5)"
                ));
            }
            o
        }
    };
    Ok(PatchSpec {
        size,
        overlap,
        blending: Default::default(),
    })
}

/// Whole numbers >= 1 separated by any of `separators`; none when one is not.
fn sizes(s: &str, separators: &[char]) -> Option<Vec<i64>> {
    let out: Option<Vec<i64>> = s
        .split(|c| separators.contains(&c))
        .map(|v| v.trim().parse::<i64>().ok().filter(|&v| v >= 1))
        .collect();
    out.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_commas_or_x() {
        assert_eq!("224,224".parse::<Size>().unwrap(), Size(vec![224, 224]));
        assert_eq!("96x96x64".parse::<Size>().unwrap(), Size(vec![96, 96, 64]));
        let e = "224,0".parse::<Size>().unwrap_err();
        assert!(e.contains("e.g. 224,224"), "{e}");
        assert!("".parse::<Size>().is_err());
    }

    #[test]
    fn patches_take_a_size_and_an_optional_overlap() {
        let p = patch("64").unwrap();
        assert_eq!((p.size, p.overlap), (vec![64], 0.25));
        let p = patch("96x96x64,0.5").unwrap();
        assert_eq!((p.size, p.overlap), (vec![96, 96, 64], 0.5));
        assert!(patch("64,1").unwrap_err().contains("less than 1"));
        assert!(patch("64,64").unwrap_err().contains("less than 1"));
        assert!(patch("64x").unwrap_err().contains("e.g. 96x96x64,0.5"));
        assert!(patch("a").is_err());
    }

    #[test]
    fn channel_values_are_finite_numbers() {
        assert_eq!(
            "0.485, 0.456,0.406".parse::<Channels>().unwrap(),
            Channels(vec![0.485, 0.456, 0.406])
        );
        assert!("0.4,,0.3".parse::<Channels>().is_err());
        assert!("nan".parse::<Channels>().is_err());
    }
}
