#include "../bootstrap.h"

struct event* ptr;