//! Crafted inputs shared by the bad-input tests (tests/bounded_readers.rs, tests/catalogue.rs): small
//! files in the real formats that ask a reader for far more than they hold. Needs the `fixtures`
//! and `writers` modules beside it.

use std::io::Write;
use std::path::{Path, PathBuf};

use cifar_wgpu::keras;
use cifar_wgpu::model::Sequential;
use cifar_wgpu::model::io::SavedModel;

use crate::writers::{self, Keys};

/// A Python-layout CIFAR archive whose `data_batch_1` is `pickle`, at `path`.
pub fn python_archive_with(path: &Path, pickle: Vec<u8>) {
    let ds = crate::fixtures::tiny_cifar(2, 2, 7);
    let mut members = writers::cifar_python_members(&ds, Keys::Bytes).unwrap();
    members
        .iter_mut()
        .find(|(n, _)| n == "data_batch_1")
        .unwrap()
        .1 = pickle;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    writers::write_tar_gz(path, &writers::in_folder("cifar-10-batches-py", members)).unwrap();
}

/// Replace `from` by `to` in the file at `path`, whether the JSON is written with spaces or not.
pub fn edit_json(path: &Path, from: &str, to: &str) {
    let json = std::fs::read_to_string(path).unwrap();
    let compact = |s: &str| s.replace(": ", ":").replace(", ", ",");
    let edited = json.replace(from, to).replace(&compact(from), &compact(to));
    assert_ne!(json, edited, "{from} is not in {json}");
    std::fs::write(path, edited).unwrap();
}

/// The Keras files of a 6x6x2 notebook model in `dir`, for the tests to break; returns the
/// architecture's path.
pub fn keras_files(dir: &Path) -> PathBuf {
    let model = Sequential::notebook([6, 6, 2], 3);
    let params = model.init_params(1).unwrap();
    let saved = SavedModel {
        class_names: (0..3).map(|i| format!("c{i}")).collect(),
        model,
        params,
    };
    keras::save_keras_files(dir, &saved).unwrap();
    dir.join(keras::ARCHITECTURE_FILE)
}

/// A CIFAR-10 binary archive, gzipped, at `path`: a GNU long-name entry of `len` bytes, then the
/// member it would name.
pub fn gnu_long_name_tar_gz(path: &Path, len: usize) {
    let name = vec![b'a'; len];
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(name.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, name.as_slice()).unwrap();
    let mut tar = builder.into_inner().unwrap();
    tar.extend(writers::tar_bytes(&[("cifar-10-batches-bin/x".into(), vec![1])]).unwrap());
    writers::write_gz(path, &tar).unwrap();
}

/// A PNG that claims `side` x `side` gray pixels: a real header and a tiny IDAT.
pub fn huge_png_header(side: u32) -> Vec<u8> {
    let chunk = |out: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    };
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray, deflate, no filter, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; 1 << 16]).unwrap();
    chunk(&mut png, b"IDAT", &z.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    png
}
