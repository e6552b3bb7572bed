//! Every kind of bad input gets its own error, which names the file and says what is wrong; none
//! panics. One test per kind (issue 3, "Bad input"), plus a few more the readers check.

#[path = "common/data_fixtures.rs"]
mod fixtures;
#[path = "common/writers.rs"]
mod writers;

use std::io::Write;
use std::path::{Path, PathBuf};

use cifar_wgpu::data::{self, Checksums, DataError, DataOptions, verify::hash_file};
use fixtures::{offline_opts, tiny_cifar};
use writers::{ImageFormat, Keys, Member};

const BIN: &str = "cifar-10-batches-bin";
const PY: &str = "cifar-10-batches-py";

/// The members of a tiny binary archive (3 records a batch), for tests to break.
fn binary_members() -> Vec<Member> {
    writers::cifar_binary_members(&tiny_cifar(3, 3, 42)).unwrap()
}

fn python_members() -> Vec<Member> {
    writers::cifar_python_members(&tiny_cifar(3, 3, 43), Keys::Bytes).unwrap()
}

fn archive(dir: &Path, folder: &str, members: Vec<Member>) -> PathBuf {
    let path = dir.join("broken.tar.gz");
    writers::write_tar_gz(&path, &writers::in_folder(folder, members)).unwrap();
    path
}

fn member<'a>(members: &'a mut [Member], name: &str) -> &'a mut Vec<u8> {
    &mut members.iter_mut().find(|(n, _)| n == name).unwrap().1
}

/// Read `path`, expect an error, check that its message holds every `needle`, and return it.
fn read_err(path: &Path, needles: &[&str]) -> DataError {
    let err = data::read(path, None).expect_err("bad input was accepted");
    let msg = err.to_string();
    for needle in needles {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }
    err
}

#[test]
fn truncated_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = archive(tmp.path(), BIN, binary_members());
    let bytes = std::fs::read(&path).unwrap();
    // Cut in the middle of the deflate data, and just before the 8-byte gzip trailer.
    for cut in [bytes.len() / 2, bytes.len() - 5] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = read_err(&path, &[path.to_str().unwrap(), "truncated gzip"]);
        assert!(
            matches!(err, DataError::TruncatedGzip { .. }),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn corrupt_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = archive(tmp.path(), BIN, binary_members());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = read_err(&path, &[path.to_str().unwrap(), "corrupt gzip"]);
    assert!(matches!(err, DataError::CorruptGzip { .. }), "{err:?}");

    // A bad header is corrupt gzip too.
    std::fs::write(&path, [0x1f, 0x8b, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 2, 3]).unwrap();
    assert!(matches!(
        read_err(&path, &["corrupt gzip"]),
        DataError::CorruptGzip { .. }
    ));
}

#[test]
fn wrong_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let path = cache.join("tiny.tar.gz");
    writers::write_tar_gz(&path, &writers::in_folder(BIN, binary_members())).unwrap();
    let good = hash_file(&path).unwrap();
    let expected = Checksums {
        sha256: Some("00".repeat(32)),
        ..Checksums::from(good)
    };
    let opts = DataOptions {
        url: "https://example.invalid/tiny.tar.gz".into(),
        expected: Some(expected),
        ..offline_opts(tmp.path())
    };
    let err = data::load(&opts).expect_err("a wrong checksum was accepted");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            DataError::ChecksumMismatch {
                algorithm: "SHA-256",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        msg.contains(path.to_str().unwrap()) && msg.contains(&"00".repeat(32)),
        "{msg}"
    );
    assert!(path.is_file(), "the user's file must not be deleted");
}

#[test]
fn missing_member() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = binary_members();
    members.retain(|(n, _)| n != "data_batch_3.bin");
    let path = archive(tmp.path(), BIN, members);
    let err = read_err(
        &path,
        &[
            path.to_str().unwrap(),
            "missing member cifar-10-batches-bin/data_batch_3.bin",
        ],
    );
    assert!(matches!(err, DataError::MissingMember { .. }));
}

#[test]
fn record_of_wrong_length() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = binary_members();
    member(&mut members, "data_batch_2.bin").push(0);
    let path = archive(tmp.path(), BIN, members);
    let err = read_err(
        &path,
        &[
            path.to_str().unwrap(),
            "data_batch_2.bin",
            "record of wrong length",
            "3073-byte records",
        ],
    );
    assert!(matches!(err, DataError::RecordLength { .. }));
}

#[test]
fn python_rows_of_wrong_length() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = python_members();
    *member(&mut members, "data_batch_4") =
        writers::batch_pickle(&[0u8; 3 * 3071], 3071, &[1, 2, 3], "x", Keys::Bytes);
    let path = archive(tmp.path(), PY, members);
    let err = read_err(
        &path,
        &["data_batch_4", "rows are 3071 bytes, expected 3072"],
    );
    assert!(matches!(err, DataError::RecordLength { .. }));
}

#[test]
fn label_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = binary_members();
    member(&mut members, "test_batch.bin")[3073] = 10; // label of record 1
    let path = archive(tmp.path(), BIN, members);
    let err = read_err(
        &path,
        &[
            path.to_str().unwrap(),
            "test_batch.bin",
            "label 10 of record 1 is out of range",
        ],
    );
    assert!(matches!(
        err,
        DataError::LabelOutOfRange {
            index: 1,
            label: 10,
            ..
        }
    ));
}

#[test]
fn python_label_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = python_members();
    *member(&mut members, "test_batch") =
        writers::batch_pickle(&[0u8; 2 * 3072], 3072, &[0, -1], "x", Keys::Bytes);
    let path = archive(tmp.path(), PY, members);
    let err = read_err(&path, &["test_batch", "label -1 of record 1"]);
    assert!(matches!(err, DataError::LabelOutOfRange { .. }));
}

#[test]
fn empty_class_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pets");
    std::fs::create_dir_all(root.join("cat")).unwrap();
    std::fs::create_dir_all(root.join("dog")).unwrap();
    image::RgbImage::new(4, 4)
        .save(root.join("cat").join("a.png"))
        .unwrap();
    std::fs::write(root.join("dog").join("notes.txt"), "no images here").unwrap();
    let err = read_err(
        &root,
        &[root.join("dog").to_str().unwrap(), "no PNG or JPEG images"],
    );
    assert!(matches!(err, DataError::EmptyClassFolder { .. }));
}

#[test]
fn unreadable_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pets");
    std::fs::create_dir_all(root.join("cat")).unwrap();
    image::RgbImage::new(4, 4)
        .save(root.join("cat").join("a.png"))
        .unwrap();
    let bad = root.join("cat").join("b.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n this is not really a PNG").unwrap();
    let err = read_err(&root, &[bad.to_str().unwrap(), "unreadable image"]);
    assert!(matches!(err, DataError::UnreadableImage { .. }));
}

#[test]
fn path_does_not_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("no-such-thing.tar.gz");
    let err = read_err(
        &path,
        &[path.to_str().unwrap(), "no such file or directory"],
    );
    assert!(matches!(err, DataError::NotFound { .. }));
    let opts = DataOptions {
        data: Some(path),
        ..offline_opts(tmp.path())
    };
    assert!(matches!(data::load(&opts), Err(DataError::NotFound { .. })));
}

#[test]
fn tar_member_escaping_with_dotdot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = writers::in_folder(BIN, binary_members());
    members.insert(2, ("cifar-10-batches-bin/../../evil".into(), b"x".to_vec()));
    let path = tmp.path().join("evil.tar.gz");
    writers::write_tar_gz(&path, &members).unwrap();
    let err = read_err(
        &path,
        &[
            path.to_str().unwrap(),
            "\"cifar-10-batches-bin/../../evil\"",
            "escape",
        ],
    );
    assert!(matches!(err, DataError::UnsafeMember { .. }));
    assert!(
        !tmp.path().join("evil").exists() && !tmp.path().parent().unwrap().join("evil").exists()
    );
}

#[test]
fn tar_member_with_absolute_path() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = writers::in_folder(BIN, binary_members());
    members.push(("/tmp/cifar-wgpu-evil".into(), b"x".to_vec()));
    let path = tmp.path().join("evil.tar.gz");
    writers::write_tar_gz(&path, &members).unwrap();
    let err = read_err(&path, &["\"/tmp/cifar-wgpu-evil\"", "escape"]);
    assert!(matches!(err, DataError::UnsafeMember { .. }));
}

#[test]
fn archive_far_larger_than_the_real_one() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("huge.tar.gz");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&[0x1f, 0x8b, 8, 0]).unwrap();
    f.set_len(data::MAX_ARCHIVE_FILE + 1).unwrap(); // sparse: costs no disk
    drop(f);
    let err = read_err(
        &path,
        &[path.to_str().unwrap(), "file size exceeds 400000000 bytes"],
    );
    assert!(matches!(
        err,
        DataError::ArchiveTooLarge {
            what: "file size",
            ..
        }
    ));
}

#[test]
fn decompressed_stream_far_larger_than_the_real_one() {
    // A small, valid archive followed by zeros: 400 MB of them gzip to ~400 KB.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bomb.tar.gz");
    let tar = writers::tar_bytes(&writers::in_folder(BIN, binary_members())).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&tar).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut written = tar.len() as u64;
    while written <= data::MAX_DECOMPRESSED {
        enc.write_all(&zeros).unwrap();
        written += zeros.len() as u64;
    }
    enc.finish().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 2 << 20);
    let err = read_err(
        &path,
        &[
            path.to_str().unwrap(),
            "decompressed content exceeds 400000000 bytes",
        ],
    );
    assert!(matches!(
        err,
        DataError::ArchiveTooLarge {
            what: "decompressed content",
            ..
        }
    ));
}

#[test]
fn member_larger_than_the_real_one_is_refused_before_reading() {
    // A header claiming 40 MB for data_batch_1.bin, with no data behind it.
    let mut header = tar::Header::new_ustar();
    header
        .set_path("cifar-10-batches-bin/data_batch_1.bin")
        .unwrap();
    header.set_size(40_000_000);
    header.set_mode(0o644);
    header.set_cksum();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("liar.tar.gz");
    writers::write_gz(&path, header.as_bytes()).unwrap();
    let err = data::read(&path, None).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::MemberTooLarge {
                size: 40_000_000,
                max: 30_730_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("data_batch_1.bin"), "{err}");
}

#[test]
fn training_batches_of_different_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = binary_members();
    member(&mut members, "data_batch_5.bin").truncate(2 * 3073);
    let path = archive(tmp.path(), BIN, members);
    let err = read_err(&path, &["data_batch_5.bin", "holds 2 records, expected 3"]);
    assert!(matches!(err, DataError::BatchSize { .. }));
}

#[test]
fn duplicate_member_and_link_member() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = binary_members();
    let copy = members[1].clone();
    members.push(copy);
    let path = archive(tmp.path(), BIN, members);
    assert!(matches!(
        read_err(&path, &["appears more than once"]),
        DataError::DuplicateMember { .. }
    ));

    let mut link = tar::Header::new_ustar();
    link.set_path("cifar-10-batches-bin/data_batch_1.bin")
        .unwrap();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_link_name("/etc/passwd").unwrap();
    link.set_size(0);
    link.set_cksum();
    let mut tar = writers::tar_bytes(&[("cifar-10-batches-bin/".into(), vec![])]).unwrap();
    tar.truncate(512); // keep the folder's header, drop the end marker
    tar.extend_from_slice(link.as_bytes());
    tar.extend_from_slice(&[0u8; 1024]);
    writers::write_gz(&path, &tar).unwrap();
    assert!(matches!(
        read_err(&path, &["not a regular file"]),
        DataError::UnexpectedMember { .. }
    ));
}

#[test]
fn class_names_that_are_not_ten() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = binary_members();
    *member(&mut members, "batches.meta.txt") = b"cat\ndog\n".to_vec();
    let path = archive(tmp.path(), BIN, members);
    let err = read_err(&path, &["batches.meta.txt", "2 class names, expected 10"]);
    assert!(matches!(err, DataError::BadMeta { .. }));
}

#[test]
fn pickle_that_is_not_a_numpy_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = python_members();
    *member(&mut members, "data_batch_1") = b"\x80\x02]q\x01(K\x01K\x02e.".to_vec(); // [1, 2]
    let path = archive(tmp.path(), PY, members);
    let err = read_err(
        &path,
        &[
            "data_batch_1",
            "not a CIFAR-10 batch pickle",
            "expected a dict",
        ],
    );
    assert!(matches!(err, DataError::BadPickle { .. }));
}

#[test]
fn idx_header_claiming_more_than_the_file_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = cifar_wgpu::data::synthetic::learnable(4, 2, 5, 5, 1, 3, 1);
    writers::write_idx(&ds, tmp.path(), false).unwrap();
    let images = tmp.path().join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&images).unwrap();
    bytes[4..8].copy_from_slice(&4_000_000u32.to_be_bytes()); // 4M images of 5x5: allocate nothing
    std::fs::write(&images, &bytes).unwrap();
    let err = read_err(
        tmp.path(),
        &[
            images.to_str().unwrap(),
            "bad IDX file",
            "needs 100000016 bytes",
        ],
    );
    assert!(matches!(err, DataError::BadIdx { .. }));

    bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    std::fs::write(&images, &bytes).unwrap();
    read_err(tmp.path(), &["claims 4294967295 items"]);
}

#[test]
fn file_of_unknown_format() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notes.txt");
    std::fs::write(&path, "hello").unwrap();
    let err = read_err(&path, &[path.to_str().unwrap(), "unrecognised data format"]);
    assert!(matches!(err, DataError::UnknownFormat { .. }));
    let empty = tmp.path().join("empty-dir");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        read_err(&empty, &["unrecognised"]),
        DataError::UnknownFormat { .. }
    ));
}

#[test]
fn image_folder_test_class_missing_from_train() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = cifar_wgpu::data::synthetic::learnable(6, 3, 4, 4, 3, 3, 2);
    writers::write_image_folder(&ds, tmp.path(), true, ImageFormat::Png).unwrap();
    std::fs::create_dir_all(tmp.path().join("test").join("zebra")).unwrap();
    image::RgbImage::new(4, 4)
        .save(tmp.path().join("test").join("zebra").join("z.png"))
        .unwrap();
    let err = read_err(
        tmp.path(),
        &["zebra", "does not exist in the training folder"],
    );
    assert!(matches!(err, DataError::BadImageFolder { .. }));
}
