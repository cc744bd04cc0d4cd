// A seven-request Mooncake-format trace of 4-token blocks whose replay
// counts are worked out by hand (trace_replay_test.cpp, cli_test.cpp).
#pragma once

namespace kvscope::testing_util {

constexpr const char* kTinyTrace =
    R"({"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [1, 2, 3]}
{"timestamp": 1, "input_length": 9, "output_length": 1, "hash_ids": [1, 2, 5]}
{"timestamp": 2, "input_length": 8, "output_length": 1, "hash_ids": [1, 2]}
{"timestamp": 3, "input_length": 20, "output_length": 1, "hash_ids": [7, 8, 9, 10, 11]}
{"timestamp": 4, "input_length": 16, "output_length": 1, "hash_ids": [1, 12, 13, 14]}
{"timestamp": 5, "input_length": 12, "output_length": 1, "hash_ids": [1, 2, 3]}
{"timestamp": 6, "input_length": 12, "output_length": 1, "hash_ids": [1, 12, 15]}
)";

}  // namespace kvscope::testing_util
