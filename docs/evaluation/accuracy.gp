set terminal svg size 760,400 font 'sans,12'
set output 'accuracy.svg'
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set xtics rotate by -20
set grid ytics
set ylabel 'loss vs f16 (%), KL (millinats/token)'
set title 'stories260K, multi-turn TinyStories, KV compression'
plot 'accuracy.dat' using 2:xtic(1) title 'loss increase (%)', '' using 3 title 'KL vs f16 (millinats)'
