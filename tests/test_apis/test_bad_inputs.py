"""Input images: conversions that make sense, errors that name the input."""
import numpy as np
import pytest
from PIL import Image

from img2pose_mm.apis import load_image, to_rgb_uint8

from .conftest import synthetic_images


@pytest.fixture(scope='module')
def face_image():
    return synthetic_images(1, faces=(1, 1))[0][0]


def test_conversions(face_image, tmp_path):
    rgb = face_image
    gray = rgb.mean(-1).round().astype(np.uint8)
    gray3 = np.repeat(gray[..., None], 3, -1)
    np.testing.assert_array_equal(load_image(gray), gray3)
    np.testing.assert_array_equal(load_image(gray[..., None]), gray3)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], -1)
    np.testing.assert_array_equal(load_image(rgba), rgb)
    np.testing.assert_array_equal(load_image(Image.fromarray(rgba, 'RGBA')), rgb)
    np.testing.assert_array_equal(load_image(Image.fromarray(gray, 'L')), gray3)
    deep = rgb.astype(np.uint16) * 257
    np.testing.assert_array_equal(load_image(deep), rgb)
    np.testing.assert_array_equal(load_image(rgb / 255.0), rgb)
    np.testing.assert_array_equal(load_image(rgb.astype(np.float32)), rgb)
    np.testing.assert_array_equal(load_image(np.ones((4, 5), bool))[..., 0], 255)
    assert load_image(rgb[:, ::-1]).flags['C_CONTIGUOUS']
    # files: 8-bit, grayscale and 16-bit PNGs, RGBA PNG
    import cv2
    cv2.imwrite(str(tmp_path / 'rgb.png'), rgb[..., ::-1])
    cv2.imwrite(str(tmp_path / 'gray16.png'), gray.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / 'rgb16.png'), deep[..., ::-1])
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'rgba.png')
    np.testing.assert_array_equal(load_image(tmp_path / 'rgb.png'), rgb)
    np.testing.assert_array_equal(load_image(str(tmp_path / 'gray16.png')), gray3)
    assert np.abs(load_image(tmp_path / 'rgb16.png').astype(int) - rgb).max() <= 1
    np.testing.assert_array_equal(load_image(tmp_path / 'rgba.png'), rgb)


def test_errors_name_the_input(tmp_path, face_image):
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        load_image(tmp_path / 'missing.jpg')
    (tmp_path / 'notes.jpg').write_text('not an image')
    with pytest.raises(ValueError, match='notes.jpg'):
        load_image(tmp_path / 'notes.jpg')
    Image.fromarray(face_image).save(tmp_path / 'full.jpg', quality=95)
    data = (tmp_path / 'full.jpg').read_bytes()
    (tmp_path / 'cut.jpg').write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match='cut.jpg'):
        load_image(tmp_path / 'cut.jpg')
    with pytest.raises(ValueError, match=r'images\[3\]: empty image'):
        load_image(np.zeros((0, 10, 3), np.uint8), 'images[3]')
    with pytest.raises(ValueError, match='empty image'):
        load_image(Image.new('RGB', (0, 0)))
    with pytest.raises(ValueError, match='shape'):
        to_rgb_uint8(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match='NaN'):
        to_rgb_uint8(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match='float pixel values'):
        to_rgb_uint8(np.full((4, 4), 300.0))
    with pytest.raises(ValueError, match='integer pixel values'):
        to_rgb_uint8(np.full((4, 4), -1, np.int32))
    with pytest.raises(TypeError, match='image'):
        load_image(42)


def test_detector_bad_inputs(random_detector, face_image, tmp_path):
    det = random_detector
    rgb = face_image
    gray = rgb.mean(-1).round().astype(np.uint8)
    # converted inputs give the results of their RGB equivalents
    assert det.detect_faces(gray) == det.detect_faces(np.repeat(gray[..., None], 3, -1))
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1)
    reference = det.detect_faces(rgb)
    assert det.detect_faces(rgba) == reference
    assert det.detect_faces(rgb.astype(np.uint16) * 257) == reference
    assert det.detect_faces([]) == []
    assert det.align_faces_batch([], []) == []
    missing = tmp_path / 'nope.png'
    with pytest.raises(FileNotFoundError, match=r'images\[1\].*nope.png'):
        det.detect_faces([rgb, missing])
    with pytest.raises(FileNotFoundError, match='nope.png'):
        det.detect_faces(str(missing))
    (tmp_path / 'bad.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    with pytest.raises(ValueError, match='bad.png'):
        det.detect_and_align(tmp_path / 'bad.png')
    with pytest.raises(ValueError, match=r'images\[2\]: empty image'):
        det.detect_faces([rgb, rgb, np.zeros((5, 0, 3), np.uint8)])
    with pytest.raises(TypeError, match=r'images\[0\]'):
        det.detect_faces([None])
    with pytest.raises(ValueError, match='faces for 1'):
        det.align_faces_batch([rgb, rgb], [[]])
