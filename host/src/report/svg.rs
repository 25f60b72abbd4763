//! Inline SVG line charts: the similarity of each randomisation stage's map to the original.

use super::html::escape;

/// One named series of y values, one per stage.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub values: Vec<f64>,
}

const W: f64 = 360.0;
const H: f64 = 200.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 110.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 30.0;

/// A chart of `series` against the stage (0 = the original model), y from -1 to 1, with a
/// legend; `labels` name the stages on the x axis (thinned when many).
pub fn similarity_chart(series: &[Series], labels: &[String]) -> String {
    let n = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64;
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (v.clamp(-1.0, 1.0) + 1.0) / 2.0);
    let mut out = format!(r#"<svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" class="chart">"#);
    for v in [-1.0, -0.5, 0.0, 0.5, 1.0] {
        out += &format!(
            r##"<line x1="{LEFT}" x2="{}" y1="{y0:.1}" y2="{y0:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="10" text-anchor="end">{v}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y(v) + 3.0,
            y0 = y(v)
        );
    }
    let every = labels.len().div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate().step_by(every) {
        out += &format!(
            r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
            x(i),
            H - BOTTOM + 14.0,
            escape(label)
        );
    }
    out += &format!(
        r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">stage (layers randomised from the output)</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 4.0
    );
    for (k, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect();
        out += &format!(
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.colour,
            points.join(" ")
        );
        let ly = TOP + 14.0 * k as f64 + 6.0;
        out += &format!(
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"/><text x="{}" y="{}" font-size="10">{}</text>"#,
            W - RIGHT + 8.0,
            W - RIGHT + 22.0,
            s.colour,
            W - RIGHT + 26.0,
            ly + 3.0,
            escape(s.name)
        );
    }
    out + "</svg>"
}
