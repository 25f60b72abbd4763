//! CNN-visualisations' `convert_to_grayscale`, per example: the channels' absolute values
//! summed, then scaled so that the minimum is 0 and the 99th percentile (numpy's linear
//! interpolation between order statistics) is 1, clipped to [0, 1]: `[B, 1, ...]`.

use esegeta_plugin_api::accumulation;
use tch::Tensor;

pub fn grayscale(map: &Tensor) -> Tensor {
    let summed = map.abs().sum_dim_intlist(1, true, accumulation(map.kind()));
    let batch = summed.size()[0];
    let rows: Vec<Tensor> = (0..batch)
        .map(|b| {
            let example = summed.get(b);
            let sorted = example.flatten(0, -1).sort(0, false).0;
            let n = sorted.size()[0];
            let rank = 0.99 * (n - 1) as f64;
            let (low, high) = (rank.floor() as i64, rank.ceil() as i64);
            let at = |i: i64| sorted.double_value(&[i]);
            let p99 = at(low) + (at(high) - at(low)) * (rank - low as f64);
            let min = at(0);
            // A constant map has no spread to scale: it becomes 0 (numpy would give NaN).
            ((example - min) / (p99 - min).max(f64::MIN_POSITIVE)).clamp(0.0, 1.0)
        })
        .collect();
    Tensor::stack(&rows, 0)
}
