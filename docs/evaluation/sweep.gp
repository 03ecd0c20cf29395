set terminal svg size 760,420 font 'sans,12'
set output 'sweep.svg'
set logscale y
set xlabel 'active contexts'
set ylabel 'mean switch latency (ms, log)'
set grid
set key outside right
set title 'Markov traces, fixed budgets'
plot 'sweep.dat' index 0 with linespoints lw 2 dt 1 title 'llms, 2 ctx of f16 KV', 'sweep.dat' index 1 with linespoints lw 2 dt 2 title 'vllm-sq, 2 ctx of f16 KV', 'sweep.dat' index 2 with linespoints lw 2 dt 1 title 'llms, 4 ctx of f16 KV', 'sweep.dat' index 3 with linespoints lw 2 dt 2 title 'vllm-sq, 4 ctx of f16 KV', 'sweep.dat' index 4 with linespoints lw 2 dt 1 title 'llms, 8 ctx of f16 KV', 'sweep.dat' index 5 with linespoints lw 2 dt 2 title 'vllm-sq, 8 ctx of f16 KV', 25 with lines lc rgb 'gray' dt 3 title '25 ms limit', 100 with lines lc rgb 'gray' dt 3 title '100 ms limit'
