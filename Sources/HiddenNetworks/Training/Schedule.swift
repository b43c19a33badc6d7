// Learning-rate schedules, set once per epoch as the reference does. Warm-up (linear, in epochs)
// comes first, then
//   cosine over the remaining epochs: lr_e = 0.5 * (1 + cos(pi * (e - warmup) / (E - warmup))) * lr;
//   constant: lr_e = lr;
//   multistep: lr_e = lr * gamma^(number of milestones <= e), as torch.optim.lr_scheduler.
//     MultiStepLR (milestones are epochs counted from 0; the reference's "multistep_lr" is this
//     with a milestone every lr_adjust epochs, but crashes when selected).

import Foundation

public enum ScheduleKind: String, CaseIterable, Sendable {
    case cosine, constant, multistep
}

public struct LearningRateSchedule: Equatable, Sendable {
    public var kind: ScheduleKind
    public var baseLR: Double
    public var epochs: Int
    public var warmup: Int
    /// Multistep: the epochs (from 0, ascending) from which the rate is multiplied by `gamma` once more.
    public var milestones: [Int]
    public var gamma: Double

    public init(kind: ScheduleKind, baseLR: Double, epochs: Int, warmup: Int = 0, milestones: [Int] = [], gamma: Double = 0.1) {
        self.kind = kind; self.baseLR = baseLR; self.epochs = epochs; self.warmup = warmup
        self.milestones = milestones; self.gamma = gamma
    }

    /// The reference's default milestones: every 30 epochs (its lr_adjust), within `epochs`.
    public static func everyAdjust(_ adjust: Int = 30, epochs: Int) -> [Int] {
        stride(from: adjust, to: max(epochs, adjust), by: adjust).map { $0 }
    }

    public func lr(epoch e: Int) -> Double {
        if e < warmup { return baseLR * Double(e + 1) / Double(warmup) }
        switch kind {
        case .constant: return baseLR
        case .cosine:
            let span = Double(max(epochs - warmup, 1))
            return 0.5 * (1 + cos(Double.pi * Double(e - warmup) / span)) * baseLR
        case .multistep:
            let passed = milestones.filter { $0 <= e }.count
            return baseLR * pow(gamma, Double(passed))
        }
    }
}
