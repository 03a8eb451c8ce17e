// SQL-callable checks of W3C Trace Context values over the core's parser
// (core/trace_context.hpp): taskq._traceparent_problem() and
// taskq._tracestate_problem(), which taskq._trace_headers() uses to drop an
// invalid trace context with a warning instead of failing the enqueue.
// Both return NULL for a valid value, else the reason as text.
#include "core_bridge.h"
#include "pg_includes.hpp"

extern "C" {

PG_FUNCTION_INFO_V1(taskq_traceparent_problem);
Datum taskq_traceparent_problem(PG_FUNCTION_ARGS) {
  const text* value = PG_GETARG_TEXT_PP(0);
  const char* problem = taskq_bridge_traceparent_problem(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
  if (problem == nullptr) PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(problem));
}

PG_FUNCTION_INFO_V1(taskq_tracestate_problem);
Datum taskq_tracestate_problem(PG_FUNCTION_ARGS) {
  const text* value = PG_GETARG_TEXT_PP(0);
  int member = 0;
  const char* problem = taskq_bridge_tracestate_problem(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), &member);
  if (problem == nullptr) PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(psprintf("list member %d: %s", member, problem)));
}
}
