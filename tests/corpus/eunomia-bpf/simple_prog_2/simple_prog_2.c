char buf[100];
int arr[100];
float f1;

const char const_buf[100] = "12345";
const int const_arr[100] = {1, 2, 3, 4, 5};
const float const_f1;
