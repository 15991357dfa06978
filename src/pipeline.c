/* Placeholder: being written (see include/mysync/pipeline.h). */
#include "mysync/pipeline.h"
