set terminal svg size 760,400 font 'sans,12'
set output 'latency.svg'
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set logscale y
set key top right
set xlabel 'KV budget (of all contexts'' f16 KV)'
set ylabel 'mean time to ready (ms, log)'
set grid ytics
set title 'llama2-7b-2l, Markov, 8 contexts, ufs flash'
plot 'latency.dat' using 2:xtic(1) title columnhead, '' using 3 title columnhead, '' using 4 title columnhead, '' using 5 title columnhead
