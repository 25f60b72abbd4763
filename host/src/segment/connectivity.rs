//! SLIC's connectivity post-processing, as scikit-image 0.26's `_enforce_label_connectivity`
//! (after Achanta et al.): in raster order each unvisited pixel starts a breadth-first search
//! over its label's 6-connected pixels (stopping at `max_size`). A component smaller than
//! `min_size` takes the label of the last already-labelled neighbour the search met; one that
//! met none (the first fragments in raster order) keeps the label being handed out, which the
//! next component then shares; any other component gets the next new label. Pixels labelled
//! `start_label - 1` (outside the ROI) stay so. (Checked against scikit-image's output: the
//! fragments without a labelled neighbour are where older versions of its code differ.)

/// Connected labels from `labels` over `dims` `(z, y, x)`, new labels from `start_label`.
pub fn enforce_connectivity(
    labels: &[i64],
    dims: [usize; 3],
    min_size: usize,
    max_size: usize,
    start_label: i64,
) -> Vec<i64> {
    let [d, h, w] = dims;
    let outside = start_label - 1;
    let max_size = max_size.max(1);
    let mut out = vec![outside; labels.len()];
    let mut next_label = start_label;
    let mut queue: Vec<usize> = Vec::with_capacity(max_size);
    let steps: [(i64, i64, i64); 6] = [
        (0, 0, 1),
        (0, 0, -1),
        (0, 1, 0),
        (0, -1, 0),
        (1, 0, 0),
        (-1, 0, 0),
    ];
    for start in 0..labels.len() {
        if labels[start] == outside || out[start] > outside {
            continue;
        }
        let label = labels[start];
        let mut adjacent = outside;
        out[start] = next_label;
        queue.clear();
        queue.push(start);
        let mut visited = 0;
        'search: while visited < queue.len() && queue.len() < max_size {
            let at = queue[visited];
            let (z, y, x) = (
                (at / (h * w)) as i64,
                ((at / w) % h) as i64,
                (at % w) as i64,
            );
            for (dz, dy, dx) in steps {
                let (zz, yy, xx) = (z + dz, y + dy, x + dx);
                if zz < 0 || yy < 0 || xx < 0 || zz >= d as i64 || yy >= h as i64 || xx >= w as i64
                {
                    continue;
                }
                let j = (zz as usize * h + yy as usize) * w + xx as usize;
                if labels[j] == label && out[j] == outside {
                    out[j] = next_label;
                    queue.push(j);
                    if queue.len() >= max_size {
                        break 'search;
                    }
                } else if out[j] > outside && out[j] != next_label {
                    adjacent = out[j];
                }
            }
            visited += 1;
        }
        if queue.len() >= min_size {
            next_label += 1;
        } else if adjacent != outside {
            for &i in &queue {
                out[i] = adjacent;
            }
        }
    }
    out
}
