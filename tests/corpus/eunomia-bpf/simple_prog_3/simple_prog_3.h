struct OutData {
    int val_1;
    long long val_2;
    char val_3[100];
    int val_4;
    long long val_5;
    char val_6[100];
};
