import Foundation
import Tensor

let benchCommand = Command(name: "bench", summary: "time full training steps of the U-Net") { argv in
    var a = try Args(argv, flagNames: ["json"])
    _ = try a.int("size", default: 128, min: 1)
    try a.checkAllUsed()
    print("bench: BLAS core \(blasCoreName()) (not implemented yet)")
    return 0
}
