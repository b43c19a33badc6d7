// JPEG decoding with libjpeg-turbo's TurboJPEG API (Debian: libturbojpeg0-dev), for ImageNet-style
// image folders. A photograph is decoded at the smallest of TurboJPEG's DCT scaling factors
// (1/8, 1/4, 3/8, ..., 1) whose result still holds the region the sample needs at the size it
// needs, so a 4000 x 3000 photograph cropped to 224 x 224 costs little more than a thumbnail.
// Grayscale and CMYK files come out as RGB, as PIL's convert("RGB") makes them (the reference's
// torchvision loader). A file that is not a JPEG (ImageNet's training set holds a PNG and a CMYK
// file or two named .JPEG) or that libjpeg-turbo cannot decode is an ImageError naming why.

import CTurboJPEG
import Foundation

/// An 8-bit RGB image: rows of `width` pixels, 3 bytes each (R, G, B).
public struct RGBImage: Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3)
        self.width = width; self.height = height; self.pixels = pixels
    }
}

/// Why an image file could not be used.
public struct ImageError: Error, CustomStringConvertible {
    public enum Kind: String, Sendable { case notJPEG = "not a JPEG", corrupt = "cannot be decoded", unreadable = "cannot be read" }
    public let kind: Kind
    public let detail: String
    public var description: String { "\(kind.rawValue): \(detail)" }
}

/// What the first bytes of a file say it is ("PNG", "GIF", ...), for messages.
public func sniffImageFormat(_ bytes: UnsafeRawBufferPointer) -> String {
    func starts(_ magic: [UInt8]) -> Bool { bytes.count >= magic.count && zip(bytes, magic).allSatisfy { $0 == $1 } }
    if starts([0xFF, 0xD8, 0xFF]) { return "JPEG" }
    if starts([0x89, 0x50, 0x4E, 0x47]) { return "PNG" }
    if starts([0x47, 0x49, 0x46, 0x38]) { return "GIF" }
    if starts([0x42, 0x4D]) { return "BMP" }
    if starts([0x52, 0x49, 0x46, 0x46]) { return "RIFF (WebP?)" }
    if bytes.isEmpty { return "an empty file" }
    return "unknown data"
}

/// A TurboJPEG decompressor: one per thread (a handle is not thread-safe).
public final class JPEGDecoder {
    private var handle: tjhandle
    /// TurboJPEG's scaling factors no larger than 1, smallest first.
    public static let scalingFactors: [(num: Int, denom: Int)] = {
        var n: Int32 = 0
        guard let p = tjGetScalingFactors(&n) else { return [(1, 1)] }
        return (0..<Int(n)).map { (Int(p[$0].num), Int(p[$0].denom)) }
            .filter { $0.num <= $0.denom }
            .sorted { Double($0.num) / Double($0.denom) < Double($1.num) / Double($1.denom) }
    }()

    public init() throws {
        guard let h = tjInitDecompress() else { throw HiddenError("libjpeg-turbo: cannot create a decompressor") }
        handle = h
    }

    deinit { tjDestroy(handle) }

    /// Width, height and TurboJPEG colour space (TJCS_*) from the header.
    public func header(_ bytes: UnsafeRawBufferPointer) throws -> (width: Int, height: Int, colorspace: Int32) {
        let kind = sniffImageFormat(bytes)
        guard kind == "JPEG" else { throw ImageError(kind: .notJPEG, detail: "the file holds \(kind)") }
        var w: Int32 = 0, h: Int32 = 0, sub: Int32 = 0, cs: Int32 = 0
        let code = tjDecompressHeader3(handle, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt(bytes.count), &w, &h, &sub, &cs)
        guard code == 0, w > 0, h > 0 else { throw ImageError(kind: .corrupt, detail: message()) }
        // A header of a few bytes can claim gigapixels (found by the fuzzer: 111 bytes asking for
        // 1.86 GB); refused before any buffer is made.
        guard Int(w) * Int(h) <= Self.maxPixels else {
            throw ImageError(kind: .corrupt, detail: "the header claims \(w)x\(h) pixels, more than the \(Self.maxPixels) hidden-mpi decodes")
        }
        return (Int(w), Int(h), cs)
    }

    /// The largest image decoded: 64 megapixels (ImageNet's largest is about 32).
    public static let maxPixels = 1 << 26

    /// The smallest scaling factor whose scaled size keeps a region of `need` pixels (of the full
    /// image) at least `target` pixels wide and high, or the region's own size where that is
    /// smaller; 1 when none does.
    public static func scale(need: (w: Double, h: Double), target: Int) -> (num: Int, denom: Int) {
        for f in scalingFactors {
            let s = Double(f.num) / Double(f.denom)
            if need.w * s >= min(Double(target), need.w) && need.h * s >= min(Double(target), need.h) { return f }
        }
        return (1, 1)
    }

    /// Decodes at scaling factor `scale` (see `scale(need:target:)`) into RGB.
    public func decode(_ bytes: UnsafeRawBufferPointer, scale f: (num: Int, denom: Int) = (1, 1)) throws -> RGBImage {
        let (w, h, cs) = try header(bytes)
        let sw = (w * f.num + f.denom - 1) / f.denom, sh = (h * f.num + f.denom - 1) / f.denom
        let src = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let cmyk = cs == Int32(TJCS_CMYK.rawValue) || cs == Int32(TJCS_YCCK.rawValue)
        var out = [UInt8](repeating: 0, count: sw * sh * (cmyk ? 4 : 3))
        let code = out.withUnsafeMutableBufferPointer {
            tjDecompress2(handle, src, UInt(bytes.count), $0.baseAddress, Int32(sw), 0, Int32(sh),
                          Int32(cmyk ? TJPF_CMYK.rawValue : TJPF_RGB.rawValue), 0)
        }
        // A warning (a truncated file that still decodes) counts as an error: the picture is incomplete.
        guard code == 0 else { throw ImageError(kind: .corrupt, detail: message()) }
        guard cmyk else { return RGBImage(width: sw, height: sh, pixels: out) }
        return RGBImage(width: sw, height: sh, pixels: cmykToRGB(out, count: sw * sh))
    }

    /// The error of the last call; the handle is then replaced (after an error libjpeg-turbo
    /// 2.1's handle can fail the next, valid file with "missing SOS marker").
    private func message() -> String {
        let text = tjGetErrorStr2(handle).map { String(cString: $0) } ?? "libjpeg-turbo error"
        if let fresh = tjInitDecompress() { tjDestroy(handle); handle = fresh }
        return text
    }
}

/// Writes JPEGs (tests, and tools that turn a data set into an image folder).
public enum JPEGEncoder {
    public enum Pixels: Sendable { case rgb, gray, cmyk }

    /// `pixels` (3, 1 or 4 bytes per pixel) as a JPEG of `quality` (4:4:4 colour, or grayscale).
    public static func encode(width: Int, height: Int, pixels: [UInt8], format: Pixels, quality: Int = 95) throws -> [UInt8] {
        guard let handle = tjInitCompress() else { throw HiddenError("libjpeg-turbo: cannot create a compressor") }
        defer { tjDestroy(handle) }
        let (pf, samp): (TJPF, TJSAMP) = switch format {
        case .rgb: (TJPF_RGB, TJSAMP_444)
        case .gray: (TJPF_GRAY, TJSAMP_GRAY)
        case .cmyk: (TJPF_CMYK, TJSAMP_444)
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let code = pixels.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(width), 0, Int32(height), Int32(pf.rawValue), &out, &size,
                        Int32(samp.rawValue), Int32(quality), 0)
        }
        guard code == 0, let out else { throw HiddenError("libjpeg-turbo cannot encode: \(String(cString: tjGetErrorStr2(handle)))") }
        defer { tjFree(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(size)))
    }
}

/// Adobe CMYK JPEGs store inverted ink values (C' = 255 - C); PIL reads them as such ("CMYK;I")
/// and converts as Pillow does since 4.3: R = (255 - K) - muldiv255(C, 255 - K), with
/// muldiv255(a, b) = ((a b + 128) >> 8 + a b + 128) >> 8; on the stored values 255 - K = K'.
func cmykToRGB(_ cmyk: [UInt8], count: Int) -> [UInt8] {
    var rgb = [UInt8](repeating: 0, count: count * 3)
    for p in 0..<count {
        let nk = Int(cmyk[4 * p + 3])  // 255 - K
        for c in 0..<3 {
            let t = (255 - Int(cmyk[4 * p + c])) * nk + 128
            rgb[3 * p + c] = UInt8(max(0, min(255, nk - (((t >> 8) + t) >> 8))))
        }
    }
    return rgb
}
