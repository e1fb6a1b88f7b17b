import Foundation
import Tensor

/// `episodic blas`: what OpenBLAS runs here. `--suggest-coretype` prints the OPENBLAS_CORETYPE worth setting (nothing
/// when the detected kernel is fine); the launchers call it with the variable unset.
let blasCommand = Command(name: "blas", summary: "OpenBLAS kernel, threads, self-check and sgemm rate") { argv in
    var a = try Args(argv, flagNames: ["suggest-coretype", "json"])
    let suggest = a.flag("suggest-coretype")
    let json = a.flag("json")
    try a.checkAllUsed()
    if suggest {
        if let s = BLASInfo.suggestedCoreType() { print(s) }
        return 0
    }
    var check = "ok"
    do { try BLASInfo.selfCheck() } catch { check = "\(error)" }
    let rate = BLASInfo.sgemmRate()
    if json {
        let obj: [String: Any] = ["core": BLASInfo.coreName, "threads": BLASInfo.threads, "self_check": check, "sgemm_gflops": rate,
                                  "conv_gemm": ConvGEMM.description, "warning": BLASInfo.genericKernelWarning() ?? ""]
        print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
    } else {
        print("OpenBLAS core \(BLASInfo.coreName), \(BLASInfo.threads) thread(s), self-check: \(check), sgemm \(String(format: "%.0f", rate)) GFLOP/s")
        print("conv GEMMs: \(ConvGEMM.description)")
        if let w = BLASInfo.genericKernelWarning() { print(w) }
    }
    return check == "ok" ? 0 : 1
}
