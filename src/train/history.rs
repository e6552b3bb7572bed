//! The training history next to the model: `history.json` in the shape of Keras' `History.history`
//! (one list per metric, so `json.load` gives what a Keras user plots) and `history.csv`.

use std::path::Path;

use crate::model::io::ModelFileError;
use crate::train::EpochLog;

pub const HISTORY_JSON: &str = "history.json";
pub const HISTORY_CSV: &str = "history.csv";
/// Largest `history.json` read back: 16 MiB.
pub const MAX_HISTORY_BYTES: u64 = 16 << 20;
/// Most epochs a history read back may hold (the charts draw every one).
pub const MAX_HISTORY_EPOCHS: usize = 100_000;

/// `history.json` and `history.csv` as bytes.
pub fn files(history: &[EpochLog]) -> Vec<(&'static str, Vec<u8>)> {
    let col = |f: fn(&EpochLog) -> Option<f64>| history.iter().map(f).collect::<Vec<_>>();
    let json = serde_json::json!({
        "loss": col(|e| Some(e.loss)),
        "accuracy": col(|e| Some(e.accuracy)),
        "val_loss": col(|e| e.val_loss),
        "val_accuracy": col(|e| e.val_accuracy),
        "seconds": col(|e| Some(e.seconds)),
    });
    let json = serde_json::to_string_pretty(&json).expect("history serialises");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let mut csv = String::from("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n");
    for e in history {
        csv.push_str(&format!(
            "{},{:.6},{:.6},{},{},{:.3}\n",
            e.epoch,
            e.loss,
            e.accuracy,
            opt(e.val_loss),
            opt(e.val_accuracy),
            e.seconds
        ));
    }
    vec![
        (HISTORY_JSON, json.into_bytes()),
        (HISTORY_CSV, csv.into_bytes()),
    ]
}

/// Reads `history.json` back; a folder without one has an empty history.
pub fn load(dir: &Path) -> Result<Vec<EpochLog>, ModelFileError> {
    use std::io::Read;
    let path = dir.join(HISTORY_JSON);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ModelFileError::Io { path, source }),
    };
    let malformed = |message: String| ModelFileError::Malformed {
        path: path.clone(),
        message,
    };
    let mut bytes = Vec::new();
    file.take(MAX_HISTORY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ModelFileError::Io {
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_HISTORY_BYTES {
        return Err(malformed(format!(
            "over {MAX_HISTORY_BYTES} bytes; a history of 100,000 epochs takes about 10 MB"
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
    let column = |key: &str| -> Vec<Option<f64>> {
        v[key]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    let (loss, acc) = (column("loss"), column("accuracy"));
    let (val_loss, val_acc, secs) = (
        column("val_loss"),
        column("val_accuracy"),
        column("seconds"),
    );
    if loss.len() > MAX_HISTORY_EPOCHS {
        return Err(malformed(format!(
            "{} epochs; histories of at most {MAX_HISTORY_EPOCHS} are read",
            loss.len()
        )));
    }
    if loss.len() != acc.len() || loss.iter().chain(&acc).any(Option::is_none) {
        return Err(malformed(
            "'loss' and 'accuracy' must be lists of numbers of one length".into(),
        ));
    }
    Ok((0..loss.len())
        .map(|i| EpochLog {
            epoch: i + 1,
            loss: loss[i].unwrap(),
            accuracy: acc[i].unwrap(),
            val_loss: val_loss.get(i).copied().flatten(),
            val_accuracy: val_acc.get(i).copied().flatten(),
            seconds: secs.get(i).copied().flatten().unwrap_or(0.0),
            train_seconds: 0.0,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_through_keras_shaped_json() {
        let dir = tempfile::tempdir().unwrap();
        let h = vec![
            EpochLog {
                epoch: 1,
                loss: 1.5,
                accuracy: 0.4,
                val_loss: Some(1.2),
                val_accuracy: Some(0.5),
                seconds: 3.0,
                train_seconds: 0.0,
            },
            EpochLog {
                epoch: 2,
                loss: 1.1,
                accuracy: 0.6,
                val_loss: None,
                val_accuracy: None,
                seconds: 2.5,
                train_seconds: 0.0,
            },
        ];
        for (name, bytes) in files(&h) {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        assert_eq!(load(dir.path()).unwrap(), h);
        let csv = std::fs::read_to_string(dir.path().join(HISTORY_CSV)).unwrap();
        assert_eq!(csv.lines().nth(2).unwrap(), "2,1.100000,0.600000,,,2.500");
        assert!(load(&dir.path().join("nothing")).unwrap().is_empty());
    }

    #[test]
    fn oversized_histories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ones = vec!["1"; MAX_HISTORY_EPOCHS + 1].join(",");
        let json = format!(r#"{{"loss": [{ones}], "accuracy": [{ones}]}}"#);
        std::fs::write(dir.path().join(HISTORY_JSON), json).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("100001 epochs") && e.contains(HISTORY_JSON),
            "{e}"
        );

        let big = std::fs::File::create(dir.path().join(HISTORY_JSON)).unwrap();
        big.set_len(MAX_HISTORY_BYTES + 1).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("over 16777216 bytes"), "{e}");
    }
}
