set terminal svg size 760,400 font 'sans,12'
set output 'ablation.svg'
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set logscale y
set xtics rotate by -20
set ylabel 'switch latency (ms, log)'
set grid ytics
set key top left
set title 'Ablation, Markov trace'
plot 'ablation.dat' using 2:xtic(1) title 'mean', '' using 3 title 'p99'
