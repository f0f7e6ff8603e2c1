# bench_smoke: runs ferry-bench --quick; passes when it exits 0 and prints
# the benchmark table (its header row and the durable single-event row).
# No figure is checked: timings are not assertions.
execute_process(COMMAND ${BENCH} --quick --data ${DATA} --dir ${DIR}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ferry-bench --quick exited with ${rc}:\n${err}")
endif()
if(NOT out MATCHES "\\| benchmark +\\| +unit +\\| +ferry +\\| +bare LMDB +\\|" OR
   NOT out MATCHES "\\| single event, durable[^\n]*events/s")
  message(FATAL_ERROR "ferry-bench --quick did not print its table:\n${out}\n${err}")
endif()
