/* kd_cmd_ops.c — (being written) */
#include "kd.h"

void kd_register_ops(void)
{
}
