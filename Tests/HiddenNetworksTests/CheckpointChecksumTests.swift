// header_crc32 covers each tensor's data offsets: a header whose offsets for two same-size tensors
// were swapped (still valid JSON, still contiguous, data untouched) must be refused, not loaded
// with the tensors exchanged.

import Foundation
import XCTest
@testable import HiddenNetworks

final class CheckpointChecksumTests: XCTestCase {
    func checkpointBytes() throws -> [UInt8] {
        let spec = SyntheticSpec(shape: Shape([12]), classes: 3, trainCount: 32, testCount: 8)
        let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 4)
        var c = TrainConfig(model: ModelConfig(architecture: .fc, width: 0.1, k: 0.5, seed: 4,
                                               inputShape: spec.shape, classes: spec.classes))
        c.globalBatch = 8
        c.maxSteps = 2
        let trainer = try Trainer(config: c, data: data, comm: SingleProcessCommunicator())
        trainer.train(onStep: { _, _ in }, onEpoch: { _, _ in })
        return try ScoreCheckpoint.capture(trainer).serialized()
    }

    func testSwappedOffsetsOfSameSizeTensorsAreRefused() throws {
        let bytes = try checkpointBytes()
        let dir = try TemporaryDirectory()
        // Unchanged, it loads.
        let good = try dir.write("good.safetensors", bytes)
        XCTAssertNoThrow(try ScoreCheckpoint.load(good))

        // scores.0 and momentum.0 have the same shape, so their offset pairs have the same size.
        var n = 0
        for i in 0..<8 { n |= Int(bytes[i]) << (8 * i) }
        var header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        func offsets(_ name: String) throws -> String {
            let pattern = "\"\(name)\":\\{\"data_offsets\":(\\[[0-9]+,[0-9]+\\])"
            let re = try NSRegularExpression(pattern: pattern)
            let m = try XCTUnwrap(re.firstMatch(in: header, range: NSRange(header.startIndex..., in: header)), "entry \(name)")
            return String(header[Range(m.range(at: 1), in: header)!])
        }
        let a = try offsets("scores.0"), b = try offsets("momentum.0")
        XCTAssertNotEqual(a, b)
        let marker = "\u{1}"
        header = header.replacingOccurrences(of: "\"scores.0\":{\"data_offsets\":\(a)", with: "\"scores.0\":{\"data_offsets\":\(marker)")
        header = header.replacingOccurrences(of: "\"momentum.0\":{\"data_offsets\":\(b)", with: "\"momentum.0\":{\"data_offsets\":\(a)")
        header = header.replacingOccurrences(of: marker, with: b)
        let swapped = Array(bytes[0..<8]) + Array(header.utf8) + Array(bytes[(8 + n)...])
        XCTAssertEqual(swapped.count, bytes.count, "same-length header")
        let bad = try dir.write("swapped.safetensors", swapped)
        // The container itself is still well formed: only the checksum can tell.
        XCTAssertNoThrow(try SafeTensorsFile(bytes: swapped, name: bad))
        assertThrowsHiddenError(try ScoreCheckpoint.load(bad), containing: ["header does not match its checksum"])
    }

    /// A safetensors entry whose shape multiplies past Int.max (here to 2^64 floats, which wraps to
    /// 0 bytes) is refused with the shape in the message, not taken as an empty tensor.
    func testShapesThatOverflowAreRefused() throws {
        for (shape, offsets) in [("[4611686018427387904,4]", "[0,0]"), ("[9223372036854775807,2]", "[0,0]"), ("[-1,4]", "[0,0]")] {
            let json = Array(#"{"x":{"dtype":"F32","shape":\#(shape),"data_offsets":\#(offsets)}}"#.utf8)
            var bytes = [UInt8](repeating: 0, count: 8)
            for i in 0..<8 { bytes[i] = UInt8((json.count >> (8 * i)) & 0xFF) }
            bytes += json
            assertThrowsHiddenError(try SafeTensorsFile(bytes: bytes, name: "big.safetensors"), containing: ["big.safetensors", "tensor x"], shape)
        }
    }
}
