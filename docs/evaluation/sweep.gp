set terminal svg size 760,420 font 'sans,12'
set output 'sweep.svg'
set logscale y
set xlabel 'active contexts'
set ylabel 'mean time to ready (ms, log)'
set grid
set key outside right
set title 'Markov traces, fixed budgets'
plot 'sweep.dat' index 0 with linespoints lw 2 dt 1 title 'llms, 42.1 MiB', 'sweep.dat' index 1 with linespoints lw 2 dt 2 title 'vllm-sq, 42.1 MiB', 'sweep.dat' index 2 with linespoints lw 2 dt 1 title 'llms, 84.3 MiB', 'sweep.dat' index 3 with linespoints lw 2 dt 2 title 'vllm-sq, 84.3 MiB', 10 with lines lc rgb 'gray' dt 3 title '10 ms limit', 25 with lines lc rgb 'gray' dt 3 title '25 ms limit'
