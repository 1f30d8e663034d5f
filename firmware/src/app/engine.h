// The seam between the command handler and an inference runtime. The TFLM runner (src/tflm/) implements it;
// a firmware built without TFLM passes no engine and answers "e-[no inference engine: built without TFLM]".
// Host tests plug in a fake engine to exercise infer/results/stream without TFLM.
#pragma once
#include <cstddef>
#include <cstdint>

namespace audio_nas {

struct TensorInfo {
  int32_t dims[6] = {0, 0, 0, 0, 0, 0};
  int ndims = 0;
  float scale = 0.0f;
  int32_t zero_point = 0;
  size_t bytes = 0;  // int8 elements
};

class InferenceEngine {
 public:
  // Builds the interpreter for `model` with an arena of `arena_bytes` (0: the largest available).
  // On failure writes the text for "e-[...]" into err (e.g. "arena too small: need N") and returns false.
  virtual bool Activate(const uint8_t* model, size_t model_bytes, size_t arena_bytes, char* err, size_t err_cap) = 0;
  // Drops the interpreter; called before the model bytes it reads are overwritten (a new upload).
  virtual void Deactivate() = 0;
  virtual bool active() const = 0;
  virtual size_t arena_used() const = 0;
  virtual TensorInfo input() const = 0;
  virtual TensorInfo output() const = 0;
  virtual int8_t* input_data() = 0;
  virtual const int8_t* output_data() const = 0;
  virtual bool Invoke(char* err, size_t err_cap) = 0;

 protected:
  ~InferenceEngine() = default;  // never deleted through the interface (no heap on the boards)
};

}  // namespace audio_nas
