//! CIFAR-10 in both official layouts, archived or extracted, read back exactly.

#[path = "common/data_fixtures.rs"]
mod fixtures;
#[path = "common/writers.rs"]
mod writers;

use cifar_wgpu::data::verify::{hash_file, stamp_path};
use cifar_wgpu::data::{self, ChecksumState, DataOptions, Flavor, verify::Verified};
use fixtures::{assert_same_data, offline_opts, tiny_cifar};
use writers::Keys;

#[test]
fn binary_tar_gz_reads_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tiny_cifar(3, 4, 1);
    let path = tmp.path().join("cifar-10-binary.tar.gz");
    writers::write_cifar_binary_tar_gz(&ds, &path).unwrap();
    let got = data::read(&path, None).unwrap();
    assert_same_data(&got, &ds);
    assert_eq!(got.name, "cifar10");
    assert_eq!(got.source, path);
    assert_eq!(
        (
            got.train.len(),
            got.test.len(),
            got.num_classes(),
            got.image_bytes()
        ),
        (15, 4, 10, 3072)
    );
}

#[test]
fn python_tar_gz_reads_back_exactly_with_bytes_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tiny_cifar(2, 3, 2);
    let path = tmp.path().join("cifar-10-python.tar.gz");
    writers::write_cifar_python_tar_gz(&ds, &path, Keys::Bytes).unwrap();
    assert_same_data(&data::read(&path, None).unwrap(), &ds);
}

#[test]
fn python_tar_gz_reads_back_exactly_with_str_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tiny_cifar(2, 3, 3);
    let path = tmp.path().join("py3.tar.gz");
    writers::write_cifar_python_tar_gz(&ds, &path, Keys::Str).unwrap();
    assert_same_data(&data::read(&path, None).unwrap(), &ds);
}

#[test]
fn binary_pixels_are_converted_from_planes_to_channels_last() {
    // One record per batch whose planes are R = p, G = p + 1, B = p + 2 (mod 256) at pixel p.
    let mut record = vec![7u8];
    for c in 0..3usize {
        record.extend((0..1024usize).map(|p| ((p + c) % 256) as u8));
    }
    let mut members: Vec<writers::Member> = (1..=5)
        .map(|i| (format!("data_batch_{i}.bin"), record.clone()))
        .collect();
    members.push(("test_batch.bin".into(), record.clone()));
    members.push((
        "batches.meta.txt".into(),
        writers::meta_txt(&data::CIFAR10_CLASSES.map(String::from)),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a.tar.gz");
    writers::write_tar_gz(&path, &writers::in_folder("cifar-10-batches-bin", members)).unwrap();
    let got = data::read(&path, None).unwrap();
    let img = got.test.image(0);
    for (y, x) in [(0, 0), (0, 31), (5, 17), (31, 31)] {
        let p = y * 32 + x;
        for c in 0..3 {
            assert_eq!(
                img[p * 3 + c],
                ((p + c) % 256) as u8,
                "pixel ({y},{x}) channel {c}"
            );
        }
    }
    assert_eq!(got.train.labels, vec![7; 5]);
    assert_eq!(got.class_names[9], "truck");
}

#[test]
fn members_may_come_in_any_order_and_plain_tar_works() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tiny_cifar(2, 2, 4);
    let mut members = writers::cifar_binary_members(&ds).unwrap();
    members.reverse();
    let tar = writers::tar_bytes(&writers::in_folder("cifar-10-batches-bin", members)).unwrap();
    let path = tmp.path().join("reversed.tar");
    std::fs::write(&path, tar).unwrap();
    assert_same_data(&data::read(&path, None).unwrap(), &ds);
}

#[test]
fn extracted_folders_and_their_parent_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tiny_cifar(2, 3, 5);
    let bin = tmp.path().join("b").join(Flavor::Binary.folder());
    writers::write_members_dir(&bin, &writers::cifar_binary_members(&ds).unwrap()).unwrap();
    let py = tmp.path().join("p").join(Flavor::Python.folder());
    writers::write_members_dir(
        &py,
        &writers::cifar_python_members(&ds, Keys::Bytes).unwrap(),
    )
    .unwrap();
    for path in [
        bin.clone(),
        bin.parent().unwrap().to_path_buf(),
        py.clone(),
        py.parent().unwrap().to_path_buf(),
    ] {
        let got = data::read(&path, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_same_data(&got, &ds);
    }
    assert_eq!(data::read(bin.parent().unwrap(), None).unwrap().source, bin);
}

#[test]
fn data_option_is_read_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tiny_cifar(1, 1, 6);
    let path = tmp.path().join("x.tar.gz");
    writers::write_cifar_binary_tar_gz(&ds, &path).unwrap();
    let opts = DataOptions {
        data: Some(path),
        ..offline_opts(tmp.path())
    };
    assert_same_data(&data::load(&opts).unwrap(), &ds);
}

#[test]
fn keras_copy_is_used_when_nothing_else_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tiny_cifar(2, 2, 7);
    let keras = tmp.path().join("keras-datasets");
    let folder = keras
        .join("cifar-10-batches-py-target")
        .join("cifar-10-batches-py");
    writers::write_members_dir(
        &folder,
        &writers::cifar_python_members(&ds, Keys::Bytes).unwrap(),
    )
    .unwrap();
    let opts = DataOptions {
        keras_datasets: Some(keras.clone()),
        ..offline_opts(tmp.path())
    };
    let got = data::load(&opts).unwrap();
    assert_same_data(&got, &ds);
    assert_eq!(got.source, folder);

    // The older Keras layout: the archive itself.
    std::fs::remove_dir_all(keras.join("cifar-10-batches-py-target")).unwrap();
    writers::write_cifar_python_tar_gz(&ds, &keras.join("cifar-10-batches-py.tar.gz"), Keys::Bytes)
        .unwrap();
    assert_same_data(&data::load(&opts).unwrap(), &ds);
}

#[test]
fn cached_archive_is_verified_once_then_trusted_through_its_stamp() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tiny_cifar(2, 2, 8);
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let archive = cache.join("tiny-cifar.tar.gz");
    writers::write_cifar_binary_tar_gz(&ds, &archive).unwrap();
    let opts = DataOptions {
        url: "https://example.invalid/tiny-cifar.tar.gz".into(),
        expected: Some(hash_file(&archive).unwrap().into()),
        ..offline_opts(tmp.path())
    };
    // info hashes it (no stamp yet) and writes the stamp.
    let info = data::info(&opts).unwrap();
    assert_eq!(info.cached.len(), 1);
    assert_eq!(
        info.cached[0].state,
        ChecksumState::Verified(Verified::Hashed)
    );
    assert!(stamp_path(&archive).is_file());
    // From now on the stamp is enough.
    let info = data::info(&opts).unwrap();
    assert_eq!(
        info.cached[0].state,
        ChecksumState::Verified(Verified::Stamp)
    );
    assert_same_data(&data::load(&opts).unwrap(), &ds);
    assert_eq!(data::fetch(&opts).unwrap(), archive);

    let text = info.to_string();
    for needle in [
        cache.to_str().unwrap(),
        "SHA-256 OK",
        "train: 10 images, test: 2 images",
        "airplane",
        "truck",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn info_without_any_copy_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let info = data::info(&offline_opts(tmp.path())).unwrap();
    assert!(info.cached.is_empty() && info.dataset.is_none() && info.keras.is_none());
    let text = info.to_string();
    assert!(
        text.contains("no archive cached") && text.contains("data fetch"),
        "{text}"
    );
}
