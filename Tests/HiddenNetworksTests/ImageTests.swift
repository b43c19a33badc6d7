// JPEG decoding (JPEG.swift) on files the test writes itself with TurboJPEG's compressor (colour,
// grayscale, CMYK; DCT scaling; a PNG, a truncated file, an empty one), and the ImageNet
// transforms' arithmetic (ImageTransforms.swift) against values computed by hand.

import XCTest
import CTurboJPEG
@testable import HiddenNetworks

/// Compresses `pixels` (in TurboJPEG pixel format `format`) at quality 100.
func makeJPEG(width: Int, height: Int, pixels: [UInt8], format: TJPF, subsampling: TJSAMP) throws -> [UInt8] {
    guard let handle = tjInitCompress() else { throw HiddenError("tjInitCompress failed") }
    defer { tjDestroy(handle) }
    var out: UnsafeMutablePointer<UInt8>? = nil
    var size: UInt = 0
    let code = pixels.withUnsafeBufferPointer {
        tjCompress2(handle, $0.baseAddress, Int32(width), 0, Int32(height), Int32(format.rawValue), &out, &size,
                    Int32(subsampling.rawValue), 100, 0)
    }
    guard code == 0, let out else { throw HiddenError("tjCompress2 failed: \(String(cString: tjGetErrorStr2(handle)))") }
    defer { tjFree(out) }
    return Array(UnsafeBufferPointer(start: out, count: Int(size)))
}

final class JPEGTests: XCTestCase {
    /// A smooth colour test card: R grows along x, G along y, B constant.
    func card(_ w: Int, _ h: Int) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            p[(y * w + x) * 3] = UInt8(x * 255 / max(1, w - 1)); p[(y * w + x) * 3 + 1] = UInt8(y * 255 / max(1, h - 1)); p[(y * w + x) * 3 + 2] = 90
        } }
        return p
    }

    func decode(_ bytes: [UInt8], scale: (num: Int, denom: Int) = (1, 1)) throws -> RGBImage {
        let decoder = try JPEGDecoder()
        return try bytes.withUnsafeBytes { try decoder.decode($0, scale: scale) }
    }

    func testColourGrayscaleAndCMYKComeOutAsRGB() throws {
        let (w, h) = (37, 23)  // odd sizes: partial MCUs
        let rgb = card(w, h)
        let colour = try decode(try makeJPEG(width: w, height: h, pixels: rgb, format: TJPF_RGB, subsampling: TJSAMP_444))
        XCTAssertEqual(colour.width, w); XCTAssertEqual(colour.height, h)
        XCTAssertLessThanOrEqual(zip(colour.pixels, rgb).map { abs(Int($0) - Int($1)) }.max()!, 4, "quality 100, 4:4:4")

        let gray = (0..<(w * h)).map { UInt8($0 % w * 6) }
        let g = try decode(try makeJPEG(width: w, height: h, pixels: gray, format: TJPF_GRAY, subsampling: TJSAMP_GRAY))
        for p in 0..<(w * h) {
            XCTAssertEqual(g.pixels[3 * p], g.pixels[3 * p + 1]); XCTAssertEqual(g.pixels[3 * p], g.pixels[3 * p + 2])
            XCTAssertLessThanOrEqual(abs(Int(g.pixels[3 * p]) - Int(gray[p])), 3, "pixel \(p)")
        }

        // CMYK as stored by Adobe (inverted), converted as Pillow does: R = K' - muldiv255(255 - C', K').
        // C' 255, M' 200, Y' 100, K' 230: 230 - 0, 230 - muldiv255(55, 230) = 230 - 50, 230 - muldiv255(155, 230) = 230 - 140.
        var cmyk = [UInt8](repeating: 0, count: w * h * 4)
        for p in 0..<(w * h) { cmyk[4 * p] = 255; cmyk[4 * p + 1] = 200; cmyk[4 * p + 2] = 100; cmyk[4 * p + 3] = 230 }
        let c = try decode(try makeJPEG(width: w, height: h, pixels: cmyk, format: TJPF_CMYK, subsampling: TJSAMP_444))
        XCTAssertEqual(c.pixels.count, w * h * 3)
        for (channel, want) in [230, 180, 90].enumerated() {
            XCTAssertLessThanOrEqual(abs(Int(c.pixels[3 * (w * 5 + 7) + channel]) - want), 3, "CMYK channel \(channel)")
        }
    }

    /// 400 x 300 needed at 100 pixels: 3/8 is the smallest factor (1/4 would leave 75 rows).
    func testDecodesAtTheSmallestDCTScaleThatKeepsTheRegionLargeEnough() throws {
        XCTAssertEqual(JPEGDecoder.scale(need: (400, 300), target: 100).num * 8 / JPEGDecoder.scale(need: (400, 300), target: 100).denom, 3)
        XCTAssertTrue(JPEGDecoder.scale(need: (400, 300), target: 300) == (1, 1))
        XCTAssertTrue(JPEGDecoder.scale(need: (50, 40), target: 224) == (1, 1), "a region smaller than the target is decoded whole")
        let f = JPEGDecoder.scale(need: (400, 300), target: 100)
        let small = try decode(try makeJPEG(width: 400, height: 300, pixels: card(400, 300), format: TJPF_RGB, subsampling: TJSAMP_420), scale: f)
        XCTAssertEqual(small.width, 150); XCTAssertEqual(small.height, 113)
        // The colour at the middle survives the scaling.
        let mid = 3 * (56 * 150 + 75)
        XCTAssertEqual(Double(small.pixels[mid]), 127, accuracy: 6)
        XCTAssertEqual(Double(small.pixels[mid + 2]), 90, accuracy: 6)
    }

    func testFilesThatAreNotJPEGsOrAreBrokenSayWhy() throws {
        let decoder = try JPEGDecoder()
        func error(_ bytes: [UInt8]) -> ImageError? {
            do { _ = try bytes.withUnsafeBytes { try decoder.decode($0) }; return nil } catch { return error as? ImageError }
        }
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 0, count: 40)
        XCTAssertEqual(error(png)?.kind, .notJPEG)
        XCTAssertTrue(error(png)?.description.contains("PNG") ?? false)
        XCTAssertEqual(error([])?.kind, .notJPEG)
        XCTAssertTrue(error([])?.description.contains("empty") ?? false)
        let jpeg = try makeJPEG(width: 64, height: 64, pixels: card(64, 64), format: TJPF_RGB, subsampling: TJSAMP_420)
        let cut = Array(jpeg.prefix(jpeg.count / 2))
        XCTAssertEqual(error(cut)?.kind, .corrupt, "a truncated JPEG")
        XCTAssertEqual(error(Array(jpeg.prefix(4)))?.kind, .corrupt, "a header cut short")
        // Found by scripts/fuzz.sh (jpeg): 111 bytes whose headers claim 21349x29045 pixels; decoding
        // allocated 1.86 GB before looking further. Refused from the header now.
        let giant = Array(Data(base64Encoded: "/9j/////2wBDASgoKCgoKCgoKCgoKCgoAAAAhigoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKP/CABEIAAcACQMBIgACEQEDEQH//9j/wgARCFNlcXUDASIAAhEBAxEB/9oACAEBAAAA4hADAFkDAQAA")!)
        XCTAssertEqual(error(giant)?.kind, .corrupt)
        XCTAssertTrue(error(giant)?.description.contains("more than the 67108864 hidden-mpi decodes") ?? false, "\(String(describing: error(giant)))")
        // The same decoder still decodes a good file after the errors.
        XCTAssertEqual(try jpeg.withUnsafeBytes { try decoder.decode($0) }.width, 64)
    }
}

final class ImageTransformTests: XCTestCase {
    /// PIL's antialiased bilinear, by hand. Down 4 -> 2: scale 2 widens the triangle to support 2;
    /// output 0 (centre 1.0) weighs pixels 0, 1, 2 by 0.75, 0.75, 0.25 (/1.75), output 1 (centre
    /// 3.0) pixels 1, 2, 3 by 0.25, 0.75, 0.75. Up 2 -> 4: centres 0.25, 0.75, 1.25, 1.75 give
    /// p0, 0.75 p0 + 0.25 p1, 0.25 p0 + 0.75 p1, p1.
    func testBilinearCoefficientsByHand() {
        let down = ImageTransforms.coefficients(lo: 0, hi: 4, length: 4, out: 2)
        XCTAssertEqual(down[0].first, 0); XCTAssertEqual(down[1].first, 1)
        assertAllClose(down[0].weights, [3.0 / 7, 3.0 / 7, 1.0 / 7].map(Float.init), rtol: 1e-6, atol: 1e-7)
        assertAllClose(down[1].weights, [1.0 / 7, 3.0 / 7, 3.0 / 7].map(Float.init), rtol: 1e-6, atol: 1e-7)
        let up = ImageTransforms.coefficients(lo: 0, hi: 2, length: 2, out: 4)
        XCTAssertEqual(up.map(\.first), [0, 0, 0, 1])
        assertAllClose(up[0].weights, [1]); assertAllClose(up[1].weights, [0.75, 0.25])
        assertAllClose(up[2].weights, [0.25, 0.75]); assertAllClose(up[3].weights, [1])
    }

    /// A 4 x 1 row [0, 70, 140, 210] (all channels) resampled to 2 x 2: (0*3 + 70*3 + 140)/7 = 50
    /// and (70 + 140*3 + 210*3)/7 = 160, then normalised with ImageNet's statistics; flipped, the
    /// two swap.
    func testResampleKnownAnswerAndFlip() {
        let row: [UInt8] = [0, 70, 140, 210]
        let image = RGBImage(width: 4, height: 1, pixels: row.flatMap { [$0, $0, $0] })
        let out = FloatBuffer(count: 3 * 2 * 2)
        ImageTransforms.resample(image, box: ImageBox(x0: 0, y0: 0, x1: 4, y1: 1), size: 2, flip: false, into: out.pointer)
        for ch in 0..<3 {
            let m = ImageTransforms.mean[ch], s = ImageTransforms.std[ch]
            for y in 0..<2 {
                XCTAssertEqual(out[ch * 4 + y * 2], (50 / 255 - m) / s, accuracy: 1e-5)
                XCTAssertEqual(out[ch * 4 + y * 2 + 1], (160 / 255 - m) / s, accuracy: 1e-5)
            }
        }
        let flipped = FloatBuffer(count: 12)
        ImageTransforms.resample(image, box: ImageBox(x0: 0, y0: 0, x1: 4, y1: 1), size: 2, flip: true, into: flipped.pointer)
        XCTAssertEqual(flipped[0], out[1]); XCTAssertEqual(flipped[1], out[0])
    }

    /// torchvision's get_params by hand. 500 x 375 with every uniform 0.5: area fraction 0.54,
    /// ratio 1, w = h = round(sqrt(101250)) = 318; y = int(0.5 * 58) = 29, x = int(0.5 * 183) = 91.
    /// 100 x 1000 with 0.99: no try fits (w ~ 363 > 100), so the fallback: w 100, h round(133.3)
    /// = 133, centred at y (1000 - 133) / 2 = 433.
    func testRandomResizedCropByHand() {
        let a = ImageTransforms.randomResizedCrop(width: 500, height: 375) { _ in 0.5 }
        XCTAssertTrue(a == (91, 29, 318, 318), "\(a)")
        let b = ImageTransforms.randomResizedCrop(width: 100, height: 1000) { _ in 0.99 }
        XCTAssertTrue(b == (0, 433, 100, 133), "\(b)")
        // A wide image's fallback: h = height, w = round(h * 4/3).
        let c = ImageTransforms.randomResizedCrop(width: 1000, height: 90) { _ in 0.99 }
        XCTAssertTrue(c == (440, 0, 120, 90), "\(c)")
    }

    /// Resize(256) then CenterCrop(224) of 500 x 375: 341 x 256, crop at left round(58.5) = 58 (half
    /// to even, as Python), top 16; in the original, x from 58 * 500/341, y from 16 * 375/256.
    func testCenterCropBoxByHand() {
        let box = ImageTransforms.centerCropBox(width: 500, height: 375, resize: 256, size: 224)
        XCTAssertEqual(box.x0, 58 * 500 / 341.0, accuracy: 1e-9)
        XCTAssertEqual(box.x1, 282 * 500 / 341.0, accuracy: 1e-9)
        XCTAssertEqual(box.y0, 23.4375, accuracy: 1e-12)
        XCTAssertEqual(box.y1, 351.5625, accuracy: 1e-12)
        let square = ImageTransforms.centerCropBox(width: 256, height: 256, resize: 256, size: 224)
        XCTAssertEqual(square, ImageBox(x0: 16, y0: 16, x1: 240, y1: 240))
    }
}
