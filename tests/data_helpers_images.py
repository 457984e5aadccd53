"""Image bytes for the data tests, generated in memory (no committed binaries)."""

import io
import struct
import zlib

import numpy as np
from PIL import Image


RED = (220, 30, 30)
BLUE = (30, 30, 220)
HTML_PAGE = b"<!doctype html><html><body><h1>Product not available</h1></body></html>"


def encode(image: Image.Image, image_format: str, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **save_kwargs)
    return buffer.getvalue()


def solid(colour=RED, size=(48, 32), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def left_red_right_blue(size=(60, 30)) -> Image.Image:
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0] // 2, size[1]))
    return image


def jpeg(colour=RED, size=(48, 32)) -> bytes:
    return encode(solid(colour, size), "JPEG", quality=95)


def png(colour=BLUE, size=(40, 40)) -> bytes:
    return encode(solid(colour, size), "PNG")


def webp(colour=RED, size=(36, 28)) -> bytes:
    return encode(solid(colour, size), "WEBP", quality=95)


def rgba_png_half_transparent(size=(40, 20)) -> bytes:
    """Left half opaque red, right half fully transparent (black with alpha 0: must become white, not black)."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    image.paste((*RED, 255), (0, 0, size[0] // 2, size[1]))
    return encode(image, "PNG")


def palette_png_with_transparency(size=(20, 20)) -> bytes:
    """Palette image whose index 0 (black) is transparent and index 1 is red; left half 1, right half 0."""
    image = Image.new("P", size, 0)
    image.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    image.paste(1, (0, 0, size[0] // 2, size[1]))
    return encode(image, "PNG", transparency=0)


def grey_png(level=90, size=(24, 24)) -> bytes:
    return encode(solid(level, size, mode="L"), "PNG")


def cmyk_jpeg(size=(32, 32)) -> bytes:
    return encode(Image.new("CMYK", size, (0, 255, 255, 0)), "JPEG", quality=95)  # pure red in CMYK


def sixteen_bit_png(value=40000, size=(16, 16)) -> bytes:
    """16-bit grey PNG; 40000 / 65535 is 61% grey, i.e. 156 in 8 bits (Pillow's plain convert would give 255)."""
    return encode(Image.fromarray(np.full(size[::-1], value, dtype=np.uint16)), "PNG")


def exif_rotated_jpeg(size=(60, 30)) -> bytes:
    """A landscape photo stored sideways: pixels left red / right blue, EXIF Orientation 6 (rotate 90 clockwise).

    Upright, it is portrait (30 x 60) with red on top and blue at the bottom.
    """
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(left_red_right_blue(size), "JPEG", quality=95, exif=exif.tobytes())


def truncated(image_format="JPEG") -> bytes:
    """The first half of a noise image's file: the header is intact, the pixels stop midway."""
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = encode(noisy, image_format)
    return data[: len(data) // 2]


def png_bomb(width=30000, height=30000) -> bytes:
    """A complete, valid greyscale PNG of `width x height` black pixels in under 1 MB (900 MB once decoded).

    The zlib stream is built without compressing 900 MB: after a full flush the compressor's state is reset, so the
    compressed form of a block of zero rows is the same every time and can be repeated; the Adler-32 of n zero bytes
    is `(n % 65521) << 16 | 1`.
    """
    rows_per_block = 100
    assert height % rows_per_block == 0
    block = b"\x00" * ((width + 1) * rows_per_block)  # each row: filter byte 0, then width zero pixels
    compressor = zlib.compressobj(9)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = compressor.flush()[:-4]  # the empty final block, without the checksum of what was actually compressed
    adler32 = ((width + 1) * height % 65521) << 16 | 1
    stream = first + repeated * (height // rows_per_block - 1) + final + adler32.to_bytes(4, "big")

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
