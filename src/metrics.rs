//! Classification metrics computed on the host from logits and labels: predictions (argmax), the
//! confusion matrix, per-class accuracy and top-k probabilities. `evaluate`, `predict` and the report
//! all take their figures from here, so they always agree.

/// The predicted class of each row of `logits` ([n, classes]): the first maximum, as tf.argmax.
pub fn argmax_rows(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks(classes)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// Accuracy per class: (correct, total) for each true class.
pub fn per_class_accuracy(
    predicted: &[usize],
    labels: &[u8],
    classes: usize,
) -> Vec<(usize, usize)> {
    let mut out = vec![(0, 0); classes];
    for (&p, &l) in predicted.iter().zip(labels) {
        let e = &mut out[l as usize];
        e.1 += 1;
        if p == l as usize {
            e.0 += 1;
        }
    }
    out
}

/// `counts[t][p]`: test images of true class `t` predicted as `p`. Rows sum to the class counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confusion {
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    pub fn new(predicted: &[usize], labels: &[u8], classes: usize) -> Confusion {
        let mut counts = vec![vec![0; classes]; classes];
        for (&p, &t) in predicted.iter().zip(labels) {
            counts[t as usize][p] += 1;
        }
        Confusion { counts }
    }
    pub fn classes(&self) -> usize {
        self.counts.len()
    }
    /// Images of true class `t`.
    pub fn row_sum(&self, t: usize) -> usize {
        self.counts[t].iter().sum()
    }
    /// Images predicted as class `p`.
    pub fn column_sum(&self, p: usize) -> usize {
        self.counts.iter().map(|row| row[p]).sum()
    }
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }
    pub fn correct(&self) -> usize {
        (0..self.classes()).map(|c| self.counts[c][c]).sum()
    }
}

/// Softmax of one row of logits, in f64 and shifted by the maximum so large logits do not overflow.
pub fn softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let exps: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The `k` most probable classes of one row of logits, with their softmax probabilities.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Stable: equal probabilities keep class order, as argmax picks the first.
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| (i, probs[i] as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_first_class_everywhere() {
        assert_eq!(argmax_rows(&[1.0, 3.0, 3.0, 0.0, 0.0, 0.0], 3), [1, 0]);
        let top = top_k(&[1.0, 3.0, 3.0], 2);
        assert_eq!((top[0].0, top[1].0), (1, 2));
        assert_eq!(top[0].1, top[1].1);
    }

    #[test]
    fn per_class_accuracy_and_the_confusion_diagonal_agree() {
        let predicted = [0, 1, 1, 2, 0];
        let labels = [0, 1, 2, 2, 1];
        let acc = per_class_accuracy(&predicted, &labels, 3);
        let conf = Confusion::new(&predicted, &labels, 3);
        for (c, &(correct, total)) in acc.iter().enumerate() {
            assert_eq!((correct, total), (conf.counts[c][c], conf.row_sum(c)));
        }
        assert_eq!((conf.correct(), conf.total()), (3, 5));
    }
}
