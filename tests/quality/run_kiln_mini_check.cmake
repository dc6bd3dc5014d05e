# ctest quality_kiln_mini: yardstick kiln-mini on the first COUNT held-out prompts (model defaults
# as both candidate and reference, so the report also shows that a render is deterministic),
# then check the report against TARGETS. Variables: CLI, MODEL, PROMPTS, CONFIG, TARGETS, OUT, COUNT.
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${CLI} yardstick --model ${MODEL} --prompts ${PROMPTS} --count ${COUNT}
                        --config ${CONFIG} --out ${OUT} --threads 2
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kiln-quality yardstick failed (${rc})")
endif()
execute_process(COMMAND ${CLI} check ${OUT}/report.json ${TARGETS} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kiln-mini missed its quality targets (${rc}): see above")
endif()
