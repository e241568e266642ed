"""img2pose_mm.utils.files: atomic writes, image files and the progress wrapper."""
import io

import cv2
import numpy as np
import pytest

from img2pose_mm.utils import atomic_write, with_progress, write_rgb_image


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / 'sub' / 'out.bin'
    atomic_write(target, b'first')
    atomic_write(target, b'second')
    assert target.read_bytes() == b'second'
    assert sorted(p.name for p in target.parent.iterdir()) == ['out.bin']


def test_write_rgb_image_png_round_trip_in_rgb_order(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    image[0, 0] = (255, 0, 0)                                  # pure red in RGB
    path = tmp_path / 'a' / 'img.png'
    write_rgb_image(path, image[:, ::-1])                      # a non-contiguous view
    read = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)         # BGR, lossless
    np.testing.assert_array_equal(read[..., ::-1], image[:, ::-1])
    np.testing.assert_array_equal(read[0, -1], (0, 0, 255))    # red is cv2's last channel
    assert sorted(p.name for p in path.parent.iterdir()) == ['img.png']


def test_write_rgb_image_passes_encoder_params(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    write_rgb_image(tmp_path / 'lo.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 10])
    write_rgb_image(tmp_path / 'hi.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert (tmp_path / 'lo.jpg').stat().st_size < (tmp_path / 'hi.jpg').stat().st_size


def test_write_rgb_image_unknown_extension_names_the_file(tmp_path):
    path = tmp_path / 'img.notanimage'
    with pytest.raises(ValueError, match=r'img\.notanimage: cannot encode'):
        write_rgb_image(path, np.zeros((4, 4, 3), np.uint8))
    assert not path.exists()


def test_with_progress_yields_every_item_and_ends_the_line():
    out = io.StringIO()
    assert list(with_progress(iter(range(5)), 5, file=out)) == [0, 1, 2, 3, 4]
    assert out.getvalue().endswith('\n') and '5/5' in out.getvalue()
    silent = io.StringIO()
    assert list(with_progress([1, 2], 2, enabled=False, file=silent)) == [1, 2]
    assert silent.getvalue() == ''
