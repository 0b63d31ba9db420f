struct S {
    __int128_t a;
    __uint128_t b;
};
