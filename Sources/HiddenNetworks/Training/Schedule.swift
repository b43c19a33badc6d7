// Learning-rate schedules, set once per epoch as the reference does. Warm-up (linear, in epochs)
// comes first, then cosine over the remaining epochs:
// lr_e = 0.5 * (1 + cos(pi * (e - warmup) / (E - warmup))) * lr.

import Foundation

public enum ScheduleKind: String, CaseIterable, Sendable {
    case cosine, constant
}

public struct LearningRateSchedule: Equatable, Sendable {
    public var kind: ScheduleKind
    public var baseLR: Double
    public var epochs: Int
    public var warmup: Int

    public init(kind: ScheduleKind, baseLR: Double, epochs: Int, warmup: Int = 0) {
        self.kind = kind; self.baseLR = baseLR; self.epochs = epochs; self.warmup = warmup
    }

    public func lr(epoch e: Int) -> Double {
        if e < warmup { return baseLR * Double(e + 1) / Double(warmup) }
        switch kind {
        case .constant: return baseLR
        case .cosine:
            let span = Double(max(epochs - warmup, 1))
            return 0.5 * (1 + cos(Double.pi * Double(e - warmup) / span)) * baseLR
        }
    }
}
